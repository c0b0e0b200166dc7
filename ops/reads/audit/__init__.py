"""``billsync recon audit``: the batch target from the sources against what the ERP holds."""
