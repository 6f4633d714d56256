"""A tenant's own mapping set laid over its profile's: entry by entry, the tenant's own entry wins."""

from __future__ import annotations

from connector.config.loader import MappingSetData


def row(category: str, option: str, dimension: str, value: str) -> dict[str, str]:
    return {"xero_category": category, "xero_option": option, "stampli_dimension": dimension, "stampli_value": value}


PROFILE = MappingSetData(
    settings={"eligible_statuses": ["AUTHORISED"], "require_vendor_map": True},
    gl={"400": "P-400", "500": "P-500"},
    tracking=[row("Department", "*", "department", "*"), row("Region", "North", "location", "N")],
    vendors={"c-1": "V-1"},
)


def test_each_entry_the_tenant_maps_is_its_own_and_every_other_is_the_profile_s() -> None:
    own = MappingSetData(settings={"eligible_statuses": ["AUTHORISED", "PAID"]}, gl={"500": "A-500", "600": "A-600"},
                         tracking=[row("Region", "North", "location", "NORTH")], vendors={"c-2": "V-2"})
    merged = own.overlaid_on(PROFILE)
    assert merged.gl == {"400": "P-400", "500": "A-500", "600": "A-600"}
    assert merged.settings == {"eligible_statuses": ["AUTHORISED", "PAID"], "require_vendor_map": True}
    assert merged.maps().tracking == {("Department", "*"): ("department", "*"),
                                      ("Region", "North"): ("location", "NORTH")}
    assert merged.vendors == {"c-1": "V-1", "c-2": "V-2"}


def test_a_tenant_with_nothing_of_its_own_maps_exactly_as_its_profile() -> None:
    assert MappingSetData().overlaid_on(PROFILE) == PROFILE


def test_a_tenant_s_policy_for_one_class_keeps_the_profile_s_policies_for_the_others() -> None:
    shared = MappingSetData(settings={"policies": {"no_po": "deliver_flagged", "vendor": "exclude"}})
    own = MappingSetData(settings={"policies": {"vendor": "hold", "unmapped_gl": "exclude"}})
    assert own.overlaid_on(shared).settings["policies"] == {
        "no_po": "deliver_flagged", "vendor": "hold", "unmapped_gl": "exclude"}


def test_dropping_entries_leaves_the_others_and_names_what_a_set_lacks() -> None:
    from connector.config.loader import Entries

    entries = Entries(gl=("500", "999"), tracking=(("Region", "North"),), settings=("require_vendor_map",))
    left = PROFILE.without(entries)
    assert (left.gl, left.settings) == ({"400": "P-400"}, {"eligible_statuses": ["AUTHORISED"]})
    assert left.maps().tracking == {("Department", "*"): ("department", "*")}
    assert PROFILE.lacking(entries) == ["GL code 999"]


def test_a_tenant_s_masks_hide_its_profile_s_entries_and_its_own_entry_still_wins() -> None:
    from connector.config.loader import Entries

    own = MappingSetData(gl={"400": "A-400"}).masking(Entries(gl=("500",), tracking=(("Region", "North"),),
                                                              vendors=("c-1",)))
    merged = own.overlaid_on(PROFILE)
    assert merged.gl == {"400": "A-400"}
    assert merged.maps().tracking == {("Department", "*"): ("department", "*")}
    assert merged.vendors == {}
    assert MappingSetData.from_json(own.as_json()) == own  # stored and read back as it was
    assert own.without(Entries(gl=("500",))).overlaid_on(PROFILE).gl == {"400": "A-400", "500": "P-500"}
    assert MappingSetData(gl={"500": "A-500"}).with_masks_of(own).masked.gl == ()  # mapped again: not masked
