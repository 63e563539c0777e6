"""One activation of one run: steps, the flow pass, the script pass, session, replay."""
