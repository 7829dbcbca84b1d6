from cadenya_server.cli import main

main()
