from longrun_cli.cli.main import main

main()
