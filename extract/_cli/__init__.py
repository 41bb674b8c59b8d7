"""The ``extract`` command's subcommands, one module each; ``extract.cli`` assembles them."""
