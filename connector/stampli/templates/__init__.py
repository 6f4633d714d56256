"""The shipped default templates (YAML) and the XSD of the default XML, read with importlib.resources."""
