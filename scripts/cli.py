"""``graftwatch SUBCOMMAND ...``: dispatch to one module per subcommand.

Each subcommand lives in ``scripts/<name>.py`` with ``build_parser() ->
argparse.ArgumentParser`` and ``main(argv=None) -> int``. Modules are imported
only when their subcommand runs, so ``graftwatch --help`` stays instant.

Exit codes: 0 done, 1 a graftwatch error (imaging/errors.py: bad input, unwritable output;
its message is printed) or, for ``batch``, a failed subject; 2 a usage error or an
unexpected exception (not a graftwatch error: probably a bug). An unexpected exception is
one line naming what was being worked on (a subcommand wraps its work in
``about("subject X")``), the exception type and message; ``-v`` adds the traceback.
130 interrupted.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import traceback
from typing import Iterator

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


def add_model_options(parser) -> None:
    """``--model`` and ``--graft``: which installed models the subject analysis runs."""
    parser.add_argument("--model", default=None,
                        help="segmentation model (default: the shipped one)")
    parser.add_argument("--graft", default=None,
                        help="graft model (default: the one paired with the segmenter, if any; "
                        "'none': the segmenter's own graft channel)")


def add_models_dir_option(parser) -> None:
    """``--models-dir``: read the models from a folder of installed models (e.g. trained ones)."""
    from pathlib import Path
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="read the models from this folder (default: the shipped weights)")


def pipeline_models(args):
    """The subject analysis's models from ``--models-dir`` (loaded once, on ``--device``), or
    None for the shipped ones (``analyze_subject`` loads those itself)."""
    from segmentation.pipeline import folder_models
    return folder_models(args.device, args.model, args.graft, args.models_dir)


def configure_logging(verbose: bool = False) -> None:
    """The only place logging is configured: the command line."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


class UnexpectedError(Exception):
    """A non-graftwatch exception (its ``__cause__``) raised while working on ``target``."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


@contextlib.contextmanager
def about(target: str) -> Iterator[None]:
    """Name ``target`` ("subject study/sub-001") in any unexpected exception raised inside."""
    from imaging.errors import GraftwatchError
    try:
        yield
    except GraftwatchError:
        raise
    except Exception as exc:
        raise UnexpectedError(target) from exc


def _unexpected(name: str, exc: BaseException, target: str | None, verbose: bool) -> int:
    where = f" ({target})" if target else ""
    print(f"graftwatch {name}: unexpected error{where}: {type(exc).__name__}: {exc}"
          + ("" if verbose else "; run with -v for the traceback"), file=sys.stderr)
    if verbose:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return 2


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
    except UnexpectedError as exc:
        return _unexpected(name, exc.__cause__, exc.target, _verbose(rest))
    except Exception as exc:  # the top level: one line, not a traceback (unless -v)
        return _unexpected(name, exc, None, _verbose(rest))
    except KeyboardInterrupt:
        print(f"graftwatch {name}: interrupted", file=sys.stderr)
        return 130


def _verbose(args: list[str]) -> bool:
    """Whether the subcommand was given -v (its parser accepted the arguments already)."""
    return "-v" in args or "--verbose" in args


if __name__ == "__main__":
    raise SystemExit(main())
