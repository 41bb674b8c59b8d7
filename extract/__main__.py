"""``python -m extract`` runs the ``extract`` command."""

from .cli import main

if __name__ == "__main__":
    main()
