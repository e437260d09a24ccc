"""The checks Home Assistant's ``hassfest`` and HACS's validation apply to a custom
integration, ported for the tests (neither ships in a package: hassfest lives in core's
repository under ``script/hassfest``, HACS's action in ``hacs/integration``).

Sources (read from stored copies of those files, not all of them the newest; where Home
Assistant's own ``strings.json``, ``icons.json`` and ``quality_scale.yaml`` files in the
installed package show a newer rule, the port follows them, and test_hassfest.py runs the
port over them so that it cannot fall behind unnoticed):

- ``script/hassfest/manifest.py``: ``INTEGRATION_MANIFEST_SCHEMA`` extended by
  ``CUSTOM_INTEGRATION_MANIFEST_SCHEMA`` (``version``, ``import_executor``), the domain is the
  folder's name, an IoT class, a version AwesomeVersion reads with its strategies, and the
  keys sorted (``domain``, ``name``, then alphabetical);
- ``script/hassfest/services.py``: ``CUSTOM_INTEGRATION_SERVICES_SCHEMA`` (selectors and the
  target through Home Assistant's own ``selector`` helper), and every action, field and
  section named and described in the translations, a select's ``translation_key`` among the
  translations' selectors, and (enforced for core only there, here too) an icon per action;
- ``script/hassfest/translations.py``: ``gen_strings_schema`` for the sections this
  integration has (config, options and config subentry flows, selectors, entities, issues,
  actions, exceptions), with ``translation_key_validator`` and
  ``translation_value_validator``; the subentry sections (``entry_type``, ``initiate_flow``)
  as core's own ``strings.json`` files have them;
- ``script/hassfest/icons.py``: ``icon_schema`` for a hub (entities by platform and
  translation key, ``services`` with ``service`` and ``sections``, ``mdi:`` icons, a state's
  icon never its default's);
- ``script/hassfest/quality_scale.py``: ``ALL_RULES`` and ``SCHEMA`` (``exempt`` needs a
  comment);
- HACS ``custom_components/hacs/utils/validate.py``: ``HACS_MANIFEST_JSON_SCHEMA`` (hacs.json,
  no key it does not know) and ``INTEGRATION_MANIFEST_JSON_SCHEMA``.

Home Assistant's helpers do what they can (``config_validation``, ``selector``), with the
validation library Home Assistant itself uses (``probatio``), so their errors are theirs.
Each ``validate_*`` returns the problems found, as hassfest lists them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import homeassistant.helpers.config_validation as cv
import probatio as vol
import yaml
from awesomeversion import AwesomeVersion, AwesomeVersionException, AwesomeVersionStrategy
from homeassistant.const import CONF_SELECTOR, Platform
from homeassistant.helpers import selector
from probatio.humanize import humanize_error

# manifest.py

SUPPORTED_IOT_CLASSES = [
    "assumed_state", "calculated", "cloud_polling", "cloud_push", "local_polling", "local_push",
]  # fmt: skip
SUPPORTED_QUALITY_SCALES = ["internal", "silver", "gold", "platinum"]
NO_IOT_CLASS = {platform.value for platform in Platform}


def _documentation_url(value: str) -> str:
    parsed = vol.Url()(value)
    if not str(parsed).startswith("https://"):
        raise vol.Invalid("Documentation url is not prefixed with https")
    if "www.home-assistant.io" in value and "/integrations/" not in value:
        raise vol.Invalid(
            "Documentation url does not begin with www.home-assistant.io/integrations"
        )
    return value


def _lowercase(value: str) -> str:
    if value.lower() != value:
        raise vol.Invalid("Value needs to be lowercase")
    return value


def _uppercase(value: str) -> str:
    if value.upper() != value:
        raise vol.Invalid("Value needs to be uppercase")
    return value


def _version(value: str) -> str:
    try:
        AwesomeVersion(
            value,
            ensure_strategy=[
                AwesomeVersionStrategy.CALVER,
                AwesomeVersionStrategy.SEMVER,
                AwesomeVersionStrategy.SIMPLEVER,
                AwesomeVersionStrategy.BUILDVER,
                AwesomeVersionStrategy.PEP440,
            ],
        )
    except AwesomeVersionException as err:
        raise vol.Invalid(f"'{value}' is not a valid version.") from err
    return value


CUSTOM_INTEGRATION_MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("domain"): str,
        vol.Required("name"): str,
        vol.Optional("integration_type", default="hub"): vol.In(
            ["device", "entity", "hardware", "helper", "hub", "service", "system"]
        ),
        vol.Optional("config_flow"): bool,
        vol.Optional("mqtt"): [str],
        vol.Optional("zeroconf"): [
            vol.Any(str, vol.Schema({vol.Required("type"): str}, extra=vol.ALLOW_EXTRA))
        ],
        vol.Optional("ssdp"): [vol.All(vol.Schema({}, extra=vol.ALLOW_EXTRA), vol.Length(min=1))],
        vol.Optional("bluetooth"): [vol.Schema({}, extra=vol.ALLOW_EXTRA)],
        vol.Optional("homekit"): vol.Schema({vol.Optional("models"): [str]}),
        vol.Optional("dhcp"): [
            vol.Schema({
                vol.Optional("macaddress"): vol.All(str, _uppercase),
                vol.Optional("hostname"): vol.All(str, _lowercase),
                vol.Optional("registered_devices"): cv.boolean,
            })
        ],
        vol.Optional("usb"): [vol.Schema({}, extra=vol.ALLOW_EXTRA)],
        vol.Required("documentation"): vol.All(vol.Url(), _documentation_url),
        vol.Optional("issue_tracker"): vol.Url(),
        vol.Optional("quality_scale"): vol.In(SUPPORTED_QUALITY_SCALES),
        vol.Optional("requirements"): [str],
        vol.Optional("dependencies"): [str],
        vol.Optional("after_dependencies"): [str],
        vol.Required("codeowners"): [str],
        vol.Optional("loggers"): [str],
        vol.Optional("disabled"): str,
        vol.Optional("iot_class"): vol.In(SUPPORTED_IOT_CLASSES),
        vol.Optional("single_config_entry"): bool,
        vol.Optional("version"): vol.All(str, _version),
        vol.Optional("import_executor"): bool,
    }
)  # fmt: skip


def validate_manifest(integration: Path) -> list[str]:
    """hassfest's manifest checks for a custom integration."""
    manifest = json.loads((integration / "manifest.json").read_text(encoding="utf-8"))
    problems = _check(CUSTOM_INTEGRATION_MANIFEST_SCHEMA, manifest, "manifest")
    if manifest.get("domain") != integration.name:
        problems.append("manifest: Domain does not match dir name")
    if manifest.get("domain") not in NO_IOT_CLASS and "iot_class" not in manifest:
        problems.append("manifest: Domain is missing an IoT Class")
    if not manifest.get("version"):
        problems.append("manifest: No 'version' key in the manifest file.")
    keys = list(manifest)
    if keys != sorted(keys, key=lambda key: {"domain": ".domain", "name": ".name"}.get(key, key)):
        problems.append("manifest: Manifest keys are not sorted correctly: domain, name, then "
                        "alphabetical order")  # fmt: skip
    if manifest.get("config_flow") and not (integration / "config_flow.py").is_file():
        problems.append("config_flow: config_flow is set but there is no config_flow.py")
    return problems


# translations.py

RE_REFERENCE = r"\[\%key:(.+)\%\]"
RE_TRANSLATION_KEY = re.compile(r"^(?!.+[_-]{2})(?![_-])[a-z0-9-_]+(?<![_-])$")
RE_COMBINED_REFERENCE = re.compile(r"(.+\[%)|(%\].+)")
RE_PLACEHOLDER_IN_SINGLE_QUOTES = re.compile(r"'{\w+}'")


def translation_key_validator(value: str) -> str:
    if RE_TRANSLATION_KEY.match(value) is None:
        raise vol.Invalid(
            f"Invalid translation key '{value}', need to be [a-z0-9-_]+ and cannot start or "
            "end with a hyphen or underscore."
        )
    return value


def translation_value_validator(value: Any) -> str:
    text = cv.string_with_no_html(value)
    if RE_PLACEHOLDER_IN_SINGLE_QUOTES.search(text):
        raise vol.Invalid("the string should not contain placeholders inside single quotes")
    if RE_COMBINED_REFERENCE.search(text):
        raise vol.Invalid("the string should not contain combined translations")
    if text != text.strip():
        raise vol.Invalid("the string should not contain leading or trailing spaces")
    return text


def _data_description_in_data(value: dict[str, Any]) -> dict[str, Any]:
    for step in value["step"].values():
        for key in step.get("data_description", {}):
            if key not in step.get("data", {}):
                raise vol.Invalid(f"data_description key {key} is not in data")
    return value


def data_entry_schema(*, subentry: bool = False) -> Callable[[Any], Any]:
    """``gen_data_entry_schema``: a config, options or subentry flow's strings."""
    text = translation_value_validator
    schema: dict[Any, Any] = {
        vol.Optional("flow_title"): text,
        vol.Required("step"): {
            str: {
                vol.Optional("title"): text,
                vol.Optional("description"): text,
                vol.Optional("data"): {str: text},
                vol.Optional("data_description"): {str: text},
                vol.Optional("menu_options"): {str: text},
                vol.Optional("menu_option_descriptions"): {str: text},
                vol.Optional("submit"): text,
                vol.Optional("sections"): {
                    str: {
                        vol.Optional("data"): {str: text},
                        vol.Optional("data_description"): {str: text},
                        vol.Optional("description"): text,
                        vol.Optional("name"): text,
                    }
                },
            }
        },
        vol.Optional("error"): {str: text},
        vol.Optional("abort"): {str: text},
        vol.Optional("progress"): {str: text},
        vol.Optional("create_entry"): {str: text},
        vol.Optional("initiate_flow"): {
            vol.Optional("user"): text,
            vol.Optional("reconfigure"): text,
        },
    }
    if subentry:
        schema[vol.Required("entry_type")] = text
    return vol.All(vol.Schema(schema), _data_description_in_data)


def _slug_keys(value_schema: Any, key: Callable[[Any], Any] = translation_key_validator) -> Any:
    return cv.schema_with_slug_keys(value_schema, slug_validator=key)


_STATES = _slug_keys(translation_value_validator)
SECTIONS: dict[str, Any] = {
    "title": translation_value_validator,
    "config": data_entry_schema(),
    "options": data_entry_schema(),
    "config_subentries": _slug_keys(data_entry_schema(subentry=True), vol.Any("_", cv.slug)),
    "selector": _slug_keys(
        {
            vol.Optional("options"): _slug_keys(translation_value_validator),
            vol.Optional("fields"): {
                str: vol.Any(
                    translation_value_validator,
                    {
                        vol.Optional("name"): translation_value_validator,
                        vol.Optional("description"): translation_value_validator,
                    },
                )
            },
            vol.Optional("unit_of_measurement"): {str: translation_value_validator},
        },
        vol.Any("_", cv.slug),
    ),
    "issues": {
        str: vol.Schema({
            vol.Required("title"): translation_value_validator,
            vol.Optional("short_title"): translation_value_validator,
            vol.Exclusive("description", "fixable"): translation_value_validator,
            vol.Exclusive("fix_flow", "fixable"): data_entry_schema(),
        })
    },
    "device": _slug_keys({vol.Optional("name"): translation_value_validator}),
    "entity": _slug_keys(
        _slug_keys({
            vol.Optional("name"): translation_value_validator,
            vol.Optional("unit_of_measurement"): translation_value_validator,
            vol.Optional("state"): _STATES,
            vol.Optional("state_attributes"): _slug_keys({
                vol.Optional("name"): translation_value_validator,
                vol.Optional("state"): _STATES,
            }),
        }),
        cv.slug,
    ),
    "exceptions": _slug_keys({vol.Optional("message"): translation_value_validator}, cv.slug),
    "services": _slug_keys({
        vol.Required("name"): translation_value_validator,
        vol.Required("description"): translation_value_validator,
        vol.Optional("fields"): _slug_keys({
            vol.Required("name"): str,
            vol.Required("description"): translation_value_validator,
            vol.Optional("example"): translation_value_validator,
        }),
        vol.Optional("sections"): _slug_keys({
            vol.Required("name"): str,
            vol.Optional("description"): translation_value_validator,
        }),
    }),
}  # fmt: skip
"""``gen_strings_schema``'s sections for what an integration like ours translates."""


def validate_translations(strings: dict[str, Any]) -> list[str]:
    """hassfest's translation schema, section by section (unknown sections are errors)."""
    problems = [f"translations: unknown section {key!r}" for key in strings if key not in SECTIONS]
    for key, value in strings.items():
        if key in SECTIONS:
            problems += _check(vol.Schema(SECTIONS[key]), value, f"translations {key}")
    return problems


# services.py


def _exists(value: Any) -> Any:
    if value is None:
        raise vol.Invalid("Value cannot be None")
    return value


def _unique_fields(fields: dict[str, Any]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, value in fields.items():
        names = list(value["fields"]) if value and "fields" in value else [key]
        for name in names:
            if name in seen:
                raise vol.Invalid(f"Duplicate use of field {name} in service.")
            seen.add(name)
    return fields


_FIELD = vol.Schema({
    vol.Optional("example"): _exists,
    vol.Optional("default"): _exists,
    vol.Optional("required"): bool,
    vol.Optional("advanced"): bool,
    vol.Optional(CONF_SELECTOR): selector.validate_selector,
    vol.Optional("filter"): dict,
    vol.Optional("description"): str,
    vol.Optional("name"): str,
})  # fmt: skip
_SECTION = vol.Schema({
    vol.Optional("description"): str,
    vol.Optional("name"): str,
    vol.Optional("collapsed"): bool,
    vol.Required("fields"): vol.Schema({str: _FIELD}),
})  # fmt: skip
CUSTOM_INTEGRATION_SERVICES_SCHEMA = vol.Schema({
    cv.slug: vol.Any(
        vol.Schema({
            vol.Optional("description"): str,
            vol.Optional("name"): str,
            vol.Optional("target"): vol.Any(selector.TargetSelector.CONFIG_SCHEMA, None),
            vol.Optional("fields"): vol.All(
                vol.Schema({str: vol.Any(_FIELD, _SECTION)}), _unique_fields
            ),
        }),
        None,
    )
})  # fmt: skip


def validate_services(
    integration: Path, strings: dict[str, Any], icons: dict[str, Any]
) -> list[str]:
    """hassfest's services checks, with the icon rule it applies to core integrations."""
    data = yaml.safe_load((integration / "services.yaml").read_text(encoding="utf-8"))
    problems = _check(CUSTOM_INTEGRATION_SERVICES_SCHEMA, data, "services")
    texts = strings.get("services", {})
    suffix = "and is not in the translations file"
    for name, spec in (data or {}).items():
        if name not in icons.get("services", {}):
            problems.append(f"services: Service {name} has no icon in icons.json.")
        if spec is None:
            continue
        for key in ("name", "description"):
            if key not in spec and key not in texts.get(name, {}):
                problems.append(f"services: Service {name} has no {key} {suffix}")
        for field, field_spec in spec.get("fields", {}).items():
            if "fields" in field_spec:  # a section
                if "name" not in texts.get(name, {}).get("sections", {}).get(field, {}):
                    problems.append(f"services: Service {name} has a section {field} with no "
                                    f"name {suffix}")  # fmt: skip
                continue
            for key in ("name", "description"):
                if key not in field_spec and key not in texts.get(name, {}).get("fields", {}).get(
                    field, {}
                ):
                    problems.append(f"services: Service {name} has a field {field} with no "
                                    f"{key} {suffix}")  # fmt: skip
            key = field_spec.get("selector", {}).get("select", {}).get("translation_key")
            if key is not None and key not in strings.get("selector", {}):
                problems.append(f"services: Service {name} field {field}: selector translation "
                                f"key {key} is not in the translations file")  # fmt: skip
    return problems


# icons.py


def icon_value_validator(value: Any) -> str:
    text = cv.string_with_no_html(value)
    if not text.startswith("mdi:"):
        raise vol.Invalid(
            "The icon needs to be a valid icon from Material Design Icons and start with `mdi:`"
        )
    return str(text)


def _not_same_as_default(value: dict[str, Any]) -> dict[str, Any]:
    for key, section in value.items():
        default, states = section.get("default"), section.get("state", {})
        for state, icon in states.items():
            if icon == default:
                raise vol.Invalid(f"The icon for state `{key}.{state}` is the same as the "
                                  "default icon and thus can be removed")  # fmt: skip
    return value


_STATE_ICONS = _slug_keys(icon_value_validator)
_DATA_ENTRY_ICONS = vol.Schema({
    "step": {str: {vol.Optional("section"): {str: icon_value_validator},
                   vol.Optional("sections"): {str: icon_value_validator}}}
})  # fmt: skip
HUB_ICONS_SCHEMA = vol.Schema({
    vol.Optional("config"): _DATA_ENTRY_ICONS,
    vol.Optional("options"): _DATA_ENTRY_ICONS,
    vol.Optional("issues"): vol.Schema({str: {"fix_flow": _DATA_ENTRY_ICONS}}),
    vol.Optional("services"): _slug_keys({
        vol.Optional("service"): icon_value_validator,
        vol.Optional("sections"): _STATE_ICONS,
    }),
    # hassfest applies ensure_not_same_as_default to entity components (the platforms'
    # own icons) only; here, to each entity's state attributes as it does.
    vol.Optional("entity"): _slug_keys(
        _slug_keys({
            vol.Optional("default"): icon_value_validator,
            vol.Optional("state"): _STATE_ICONS,
            vol.Optional("range"): {vol.Coerce(float): icon_value_validator},
            vol.Optional("state_attributes"): vol.All(
                _slug_keys({
                    vol.Optional("default"): icon_value_validator,
                    vol.Optional("state"): _STATE_ICONS,
                }),
                _not_same_as_default,
            ),
        }),
        cv.slug,
    ),
})  # fmt: skip
"""``icon_schema`` for an integration of type ``hub``."""


def validate_icons(icons: dict[str, Any]) -> list[str]:
    return _check(HUB_ICONS_SCHEMA, icons, "icons")


# quality_scale.py

ALL_RULES = {
    "bronze": [
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions",
        "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry", "docs-conditions", "docs-triggers",
    ],
    "silver": [
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ],
    "gold": [
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}  # fmt: skip
QUALITY_SCALE_SCHEMA = vol.Schema({
    vol.Required("rules"): vol.Schema({
        vol.Optional(rule): vol.Any(
            vol.In(["todo", "done"]),
            vol.Schema({vol.Required("status"): vol.In(["todo", "done"]),
                        vol.Optional("comment"): str}),
            vol.Schema({vol.Required("status"): "exempt", vol.Required("comment"): str}),
        )
        for rules in ALL_RULES.values()
        for rule in rules
    })
})  # fmt: skip


def quality_scale_status(integration: Path) -> dict[str, str]:
    """Every rule's status (``done``, ``todo``, ``exempt``)."""
    data = yaml.safe_load((integration / "quality_scale.yaml").read_text(encoding="utf-8"))
    return {
        rule: value["status"] if isinstance(value, dict) else value
        for rule, value in data["rules"].items()
    }


def validate_quality_scale(integration: Path) -> list[str]:
    data = yaml.safe_load((integration / "quality_scale.yaml").read_text(encoding="utf-8"))
    return _check(QUALITY_SCALE_SCHEMA, data, "quality_scale")


# HACS: custom_components/hacs/utils/validate.py

HACS_MANIFEST_JSON_SCHEMA = vol.Schema(
    {
        vol.Optional("content_in_root"): bool,
        vol.Optional("country"): vol.Any(str, [str]),
        vol.Optional("filename"): str,
        vol.Optional("hacs"): str,
        vol.Optional("hide_default_branch"): bool,
        vol.Optional("homeassistant"): str,
        vol.Optional("persistent_directory"): str,
        vol.Optional("render_readme"): bool,
        vol.Optional("zip_release"): bool,
        vol.Required("name"): str,
    },
    extra=vol.PREVENT_EXTRA,
)
HACS_INTEGRATION_MANIFEST_SCHEMA = vol.Schema(
    {
        vol.Required("codeowners"): list,
        vol.Required("documentation"): cv.url,
        vol.Required("domain"): str,
        vol.Required("issue_tracker"): cv.url,
        vol.Required("name"): str,
        vol.Required("version"): vol.Coerce(AwesomeVersion),
    },
    extra=vol.ALLOW_EXTRA,
)


def validate_hacs(repository: Path, integration: Path) -> list[str]:
    hacs = json.loads((repository / "hacs.json").read_text(encoding="utf-8"))
    manifest = json.loads((integration / "manifest.json").read_text(encoding="utf-8"))
    return _check(HACS_MANIFEST_JSON_SCHEMA, hacs, "hacs.json") + _check(
        HACS_INTEGRATION_MANIFEST_SCHEMA, manifest, "HACS manifest"
    )


def _check(schema: Callable[[Any], Any], data: Any, what: str) -> list[str]:
    try:
        schema(data)
    except vol.Invalid as err:
        return [f"{what}: {humanize_error(data, err)}"]
    return []
