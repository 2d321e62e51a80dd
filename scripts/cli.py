"""``graftwatch SUBCOMMAND ...``: dispatch to one module per subcommand.

Each subcommand lives in ``scripts/<name>.py`` with ``build_parser() ->
argparse.ArgumentParser`` and ``main(argv=None) -> int``. Modules are imported
only when their subcommand runs, so ``graftwatch --help`` stays instant.
"""

from __future__ import annotations

import importlib
import logging
import sys

SUBCOMMANDS = {
    "demo": "generate a small phantom cohort, analyse it and say where the report is",
    "series": "list the image series in a folder (UID, description, plane, dims, spacing, echoes)",
    "phantom": "write a simulated BIDS study with known graft truth",
    "train": "train a segmentation model on phantoms and real scans",
    "evaluate": "score a model (and a classical baseline) on held-out data",
    "evaluate-survival": "survival analysis against phantom truth (fraction, CI, iron, 19F, flags)",
    "segment": "segment one scan with a shipped model",
    "analyze": "analyse one subject: graft at every timepoint, survival, flags",
    "batch": "analyse every subject under a root folder or manifest",
}


def _usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = ["usage: graftwatch SUBCOMMAND [options]  (graftwatch SUBCOMMAND --help for more)",
             "", "subcommands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SUBCOMMANDS.items()]
    return "\n".join(lines)


def configure_logging(verbose: bool = False) -> None:
    """The only place logging is configured: the command line."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    if args[0] == "--version":
        from importlib.metadata import version
        print(f"graftwatch {version('graftwatch')}")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"graftwatch: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"scripts.{name.replace('-', '_')}")
    from imaging.errors import GraftwatchError
    try:
        return int(module.main(rest) or 0)
    except GraftwatchError as exc:
        print(f"graftwatch {name}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"graftwatch {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
