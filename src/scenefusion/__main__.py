"""`python -m scenefusion ...` runs the CLI, e.g. where the console script is not on PATH."""

from .cli import app

if __name__ == "__main__":
    app(prog_name="scenefusion")
