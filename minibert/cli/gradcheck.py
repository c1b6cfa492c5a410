"""`minibert gradcheck`: every backward against finite differences."""
from __future__ import annotations

from dataclasses import dataclass, field

from minibert import checks, gradcheck
from minibert.cli.command import Command


@dataclass(kw_only=True)
class GradcheckArgs:
    config: str = field(default="tiny", metadata={
        "help": "preset for the whole-model check (tiny, mini, ...) or 'odd'"})
    seed: int = field(default=0, metadata={"help": "seed of the random inputs and weights"})
    per_param: int = field(default=4, metadata={
        "check": checks.positive, "help": "entries checked per model parameter"})


def run_gradcheck(args: GradcheckArgs) -> int:
    """Print the table; exit code 1 if any check fails."""
    return 0 if gradcheck.run(args.config, args.seed, args.per_param) else 1


COMMANDS = (
    Command("gradcheck", "check every backward pass against finite differences", GradcheckArgs, run_gradcheck,
            description=gradcheck.__doc__),
)
