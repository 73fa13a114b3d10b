"""What every API view does with its input: validate it through a serializer, one way."""

from etcdmonitor_site.errors import InvalidInput


def validated(serializer_class, data) -> dict:
    """`data` checked by `serializer_class`; a refusal is DRF's ValidationError, which the
    one exception handler words for the route (etcdmonitor_site.exceptions)."""
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def validated_body(
    request, serializer_class, *, not_an_object: str, code: str = "", optional: bool = False
) -> dict:
    """The request's JSON object body, validated; `not_an_object` is the refusal's text when
    the body is JSON but no object (an `optional` body may also be absent)."""
    data = request.data
    if optional and not data:
        data = {}
    if not isinstance(data, dict):
        raise InvalidInput(not_an_object, code=code)
    return validated(serializer_class, data)
