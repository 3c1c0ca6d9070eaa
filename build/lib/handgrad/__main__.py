from handgrad.cli import run

run()
