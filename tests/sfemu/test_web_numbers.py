"""Numbers on the emulator's pages read as on Salesforce's: the records list shows an NPS of
`4`, as the record page does, not `4.0` (issue 13)."""

from __future__ import annotations

import re
from typing import Any

from .conftest import Api


def test_records_list_and_record_show_a_number_with_its_fields_decimal_places(
    client: Any, admin: Api
) -> None:
    created = admin.post(
        "/sobjects/Survey_Response__c", json={"Response_ID__c": "R_1", "NPS_Score__c": 4}
    )
    assert created.status_code == 201, created.text
    record_id = created.json()["id"]
    listing = client.get("/__emulator__/ui/acme/Survey_Response__c").text
    row = re.search(rf"<tr><td><a [^>]*{record_id}.*?</tr>", listing, re.S)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(0))
    assert "4" in cells and "4.0" not in cells
    record = client.get(f"/__emulator__/ui/acme/Survey_Response__c/{record_id}").text
    # the field's own value, not the whole page: a timestamp such as 07:49:24.019 holds "4.0"
    assert 'value="4"' in record and 'value="4.0"' not in record
