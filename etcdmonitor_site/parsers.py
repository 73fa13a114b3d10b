"""The project's request body parser (DRF `DEFAULT_PARSER_CLASSES`)."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's JSON parser, except that a body nested too deeply for the json module (e.g. "[" a
    thousand times raises RecursionError, not ValueError) is a ParseError, so every route answers
    400 with a JSON error instead of a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
