"""Describe: the global object list and per-object describe, as the caller's profile sees them.

Field entries carry the same keys as a real describe (see
reference/salesforce/describe_field_samples_real_capture.json); createable / updateable reflect
the profile's object permissions and field-level security, hidden fields are left out, and
recordTypeInfos say which record types the user may use.
"""

from __future__ import annotations

from typing import Any

from .dml import Caller
from .permissions import AccessView
from .schema import FieldDef, FieldType, SObjectDef


def _urls(version: str, name: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{name}"
    return {
        "compactLayouts": f"{base}/describe/compactLayouts",
        "rowTemplate": f"{base}/{{ID}}",
        "approvalLayouts": f"{base}/describe/approvalLayouts",
        "defaultValues": f"{base}/defaultValues?recordTypeId&fields",
        "listviews": f"{base}/listviews",
        "describe": f"{base}/describe",
        "quickActions": f"{base}/quickActions",
        "layouts": f"{base}/describe/layouts",
        "sobject": base,
    }


def object_summary(view: AccessView, version: str) -> dict[str, Any]:
    """The describeGlobal entry of one object (also ``objectDescribe`` of the basic info)."""
    sobject, perms = view.sobject, view.perms
    return {
        "activateable": False,
        "associateEntityType": None,
        "associateParentEntity": None,
        "createable": perms.create,
        "custom": sobject.custom,
        "customSetting": False,
        "deepCloneable": False,
        "deletable": perms.delete,
        "deprecatedAndHidden": False,
        "feedEnabled": False,
        "hasSubtypes": False,
        # In jsforce's DescribeGlobalSObjectResult and DescribeSObjectResult types (from
        # Salesforce's WSDL); every emulated object has record Ids.
        "idEnabled": True,
        "isInterface": False,
        "isSubtype": False,
        "keyPrefix": sobject.key_prefix,
        "label": sobject.label,
        "labelPlural": sobject.label_plural,
        "layoutable": True,
        "mergeable": sobject.name in ("Account", "Contact", "Lead"),
        "mruEnabled": True,
        "name": sobject.name,
        "queryable": perms.read,
        "replicateable": True,
        "retrieveable": perms.read,
        "searchable": True,
        "triggerable": True,
        "undeletable": perms.delete,
        "updateable": perms.edit,
        "urls": _urls(version, sobject.name),
    }


def describe_global(caller: Caller) -> dict[str, Any]:
    """GET /sobjects: every object the caller can read."""
    sobjects = []
    for sobject in caller.org.sobjects.values():
        view = caller.view(sobject)
        if view.perms.read:
            sobjects.append(object_summary(view, caller.api_version))
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": sobjects}


def field_describe(fdef: FieldDef, view: AccessView) -> dict[str, Any]:
    """One field entry, with the caller's createable / updateable."""
    ftype = fdef.type
    is_text = fdef.is_text
    length = fdef.length if (is_text or ftype in (FieldType.ID, FieldType.REFERENCE)) else 0
    byte_length = length * 3 if is_text else length
    numeric = ftype in (FieldType.DOUBLE, FieldType.CURRENCY, FieldType.PERCENT)
    picklist_values = [
        {
            "active": entry.active,
            "defaultValue": entry.default,
            "label": entry.label,
            "validFor": None,
            "value": entry.value,
        }
        for entry in fdef.picklist
    ]
    default_value = (
        fdef.default_value if ftype in (FieldType.PICKLIST, FieldType.MULTIPICKLIST) else None
    )
    if ftype == FieldType.BOOLEAN:
        default_value = bool(fdef.default_value)
    return {
        "aggregatable": ftype not in (FieldType.TEXTAREA, FieldType.BOOLEAN),
        "aiPredictionField": False,
        "autoNumber": fdef.auto_number is not None,
        "byteLength": byte_length,
        "calculated": fdef.derived is not None and fdef.derived.kind != "full_name",
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": fdef.case_sensitive,
        "compoundFieldName": None,
        "controllerName": None,
        "createable": fdef.name in view.createable,
        "custom": fdef.custom,
        "defaultValue": default_value,
        "defaultValueFormula": None,
        "defaultedOnCreate": fdef.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": fdef.digits if ftype == FieldType.INT else 0,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": fdef.external_id,
        "extraTypeInfo": None,
        "filterable": ftype != FieldType.TEXTAREA or fdef.length <= 255,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": ftype
        not in (
            FieldType.TEXTAREA,
            FieldType.DOUBLE,
            FieldType.CURRENCY,
            FieldType.PERCENT,
            FieldType.DATETIME,
        )
        and fdef.auto_number is None,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": fdef.id_lookup,
        "inlineHelpText": None,
        "label": fdef.label,
        "length": length,
        "mask": None,
        "maskType": None,
        "name": fdef.name,
        "nameField": fdef.name_field,
        "namePointing": len(fdef.reference_to) > 1 or fdef.name == "OwnerId",
        "nillable": fdef.nillable,
        "permissionable": fdef.nillable and not fdef.system and fdef.createable,
        "picklistValues": picklist_values,
        # Salesforce tells clients to read this to spot a lookup to more than one object
        # (Task.WhoId: Contact or Lead; OwnerId: Group or User).
        "polymorphicForeignKey": len(fdef.reference_to) > 1,
        "precision": fdef.precision if numeric else 0,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": list(fdef.reference_to),
        "relationshipName": fdef.relationship_name,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": fdef.restricted_picklist,
        "scale": fdef.scale if numeric else 0,
        "searchPrefilterable": False,
        "soapType": fdef.soap_type,
        "sortable": ftype != FieldType.TEXTAREA or fdef.length <= 255,
        "type": ftype.value,
        "unique": fdef.unique,
        "updateable": fdef.name in view.updateable,
        "writeRequiresMasterRead": False,
    }


def describe_object(caller: Caller, sobject: SObjectDef) -> dict[str, Any]:
    """GET /sobjects/{name}/describe."""
    view = caller.view(sobject)
    version = caller.api_version
    body = object_summary(view, version)
    profile_name = caller.user.profile.name
    default_type = sobject.default_record_type(profile_name)
    record_type_infos = [
        {
            "active": rt.active,
            "available": caller.system or rt.is_available_to(profile_name),
            "defaultRecordTypeMapping": default_type is not None and rt.id == default_type.id,
            "developerName": rt.developer_name,
            "master": rt.master,
            "name": rt.name,
            "recordTypeId": rt.id,
            "urls": {
                "layout": f"/services/data/v{version}/sobjects/{sobject.name}/describe/layouts/"
                f"{rt.id}"
            },
        }
        for rt in sobject.record_types
    ]
    children = []
    for other in caller.org.sobjects.values():
        for fdef in other.fields.values():
            if (
                sobject.name in fdef.reference_to
                and fdef.relationship_name
                and not fdef.system
                and fdef.name not in ("OwnerId",)
            ):
                children.append(
                    {
                        "cascadeDelete": False,
                        "childSObject": other.name,
                        "deprecatedAndHidden": False,
                        "field": fdef.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": _child_relationship_name(other, fdef),
                        "restrictedDelete": False,
                    }
                )
    body.update(
        {
            "actionOverrides": [],
            "childRelationships": children,
            "compactLayoutable": True,
            # Keys a real describe sends (API 61.0 capture) that only matter for interfaces
            # and subtypes, which the emulator has none of.
            "defaultImplementation": None,
            "extendedBy": None,
            "extendsInterfaces": None,
            "implementedBy": None,
            "implementsInterfaces": None,
            "sobjectDescribeOption": "FULL",
            "fields": [field_describe(fdef, view) for fdef in view.readable.values()],
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": record_type_infos,
            "searchLayoutable": True,
            "supportedScopes": [
                {"label": "All " + sobject.label_plural.lower(), "name": "everything"}
            ],
        }
    )
    return dict(sorted(body.items()))


def _child_relationship_name(child: SObjectDef, fdef: FieldDef) -> str | None:
    if fdef.custom:
        return child.label_plural.replace(" ", "_") + "__r"
    return child.label_plural.replace(" ", "")


def basic_info(caller: Caller, sobject: SObjectDef) -> dict[str, Any]:
    """GET /sobjects/{name}: the summary and (no) recent items."""
    return {
        "objectDescribe": object_summary(caller.view(sobject), caller.api_version),
        "recentItems": [],
    }
