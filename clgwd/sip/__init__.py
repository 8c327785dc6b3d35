"""SIP trunks: messages, trunk model, OPTIONS monitor, trace."""
