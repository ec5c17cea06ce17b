"""The command line: click parses, builds validated specs, calls the engine, maps the exit."""
