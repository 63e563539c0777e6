"""The live process: dispatcher, worker, commands, read side."""
