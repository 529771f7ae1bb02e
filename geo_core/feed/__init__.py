"""The big-data platform's daily feed (accounts, loans, balances) and the credit-engine decisions."""
