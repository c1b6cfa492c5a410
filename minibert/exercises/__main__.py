"""`python -m minibert.exercises {list,start,check,capstone}`: the same as `python -m minibert exercises ...`.

The command line lives in minibert/cli/exercises.py, with every other command of minibert.
"""
import sys

from minibert.cli.exercises import main

if __name__ == "__main__":
    sys.exit(main())
