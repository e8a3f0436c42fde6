from twload.cli import main

main()
