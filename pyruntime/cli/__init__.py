"""Command line: runc's global flags, then one module per subcommand (imported lazily)."""
def main(argv=None):
    return 0
