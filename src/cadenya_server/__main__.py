"""`python -m cadenya_server` and the `cadenya-server` command.

The command's script imports this module, not the CLI: `serve --workers N` spawns
its workers, and a spawned worker imports the script's module again before it
answers uvicorn's health check. The CLI imports every feature; on a busy machine
that took longer than the check waits, and the worker was killed at start-up.
"""

from __future__ import annotations


def main() -> None:
    # Here, not at the top: see the module docstring.
    from cadenya_server.cli import main as run

    run()


if __name__ == "__main__":
    main()
