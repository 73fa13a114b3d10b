"""The OpenAPI schema describes GET /api/members as the object it answers (found by fuzzing)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from monitoring.services import collect_cluster


def _response_schema(path: str) -> dict:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    content = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    return content["schema"]


def test_members_schema_is_an_object_not_a_list():
    assert _response_schema("/api/members") == {"$ref": "#/components/schemas/MembersOutput"}


@pytest.mark.django_db
def test_a_real_members_answer_matches_its_schema(etcd_cluster, api_client):
    import jsonschema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    collect_cluster()
    body = api_client.get("/api/members").json()

    jsonschema.validate(
        body, {**_response_schema("/api/members"), "components": schema["components"]}
    )
