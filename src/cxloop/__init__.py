"""cxloop: closed-loop customer feedback linked to Salesforce."""

__version__ = "0.1.0"
