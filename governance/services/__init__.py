"""Services: the only code that writes records. Each one audits what it changes."""
