"""sfemu: a local Salesforce emulator speaking Salesforce wire formats."""
