"""Nomad's HCL2 encoding, hashing, crypto and UUID functions, matching cty's output byte for byte where it matters
to a job.

Why separate: these produce text that lands in templates and env vars, where a different byte is a different
deployment: cty's `jsonencode` sorts keys and escapes `<`, `>` and `&` like Go's encoder; `yamlencode` quotes as
go-cty-yaml does; `urlencode` writes spaces as `+`; `base64decode` refuses bytes that are not UTF-8. The hazard of
randomness (`uuidv4`, `bcrypt`) is Nomad's own: such a job renders differently on every run.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hashlib
import io
import json
import urllib.parse
import uuid
from typing import Any

import yaml

from nomad_operator.jobspec.function_support import LibraryFunction, arg_int, arg_string, function
from nomad_operator.jobspec.hcl_types import Value, is_number, normalize_number, number_to_string
from nomad_operator.jobspec.scope import FunctionError

_UUID_NAMESPACES = {"dns": uuid.NAMESPACE_DNS, "url": uuid.NAMESPACE_URL, "oid": uuid.NAMESPACE_OID,
                    "x500": uuid.NAMESPACE_X500}  # fmt: skip


def json_encode(value: Value) -> str:
    """cty's jsonencode: compact, keys sorted, whole numbers without a fraction, HTML characters escaped as Go does."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_number(value):
        return number_to_string(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return (
            text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )  # fmt: skip
    if isinstance(value, list):
        return "[" + ",".join(json_encode(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(json_encode(key) + ":" + json_encode(value[key]) for key in sorted(value)) + "}"
    raise FunctionError(f"cannot encode {value!r} as JSON")


def _from_plain(value: Any) -> Value:
    """Decoded JSON/YAML data as HCL values: whole numbers as int, dates as strings."""
    if isinstance(value, dict):
        return {str(key): _from_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_plain(item) for item in value]
    if isinstance(value, float):
        return normalize_number(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


@function("jsonencode", 1)
def _jsonencode(args: list[Value]) -> Value:
    return json_encode(args[0])


@function("jsondecode", 1)
def _jsondecode(args: list[Value]) -> Value:
    try:
        return _from_plain(json.loads(arg_string(args, 0)))
    except json.JSONDecodeError as exc:
        raise FunctionError(f"invalid JSON: {exc}", argument=0) from None


def yaml_encode(value: Value) -> str:
    """go-cty-yaml's style: keys and strings double-quoted, sequences not indented under keys, `|` for multi-line."""
    lines: list[str] = []
    _yaml_block(value, 0, lines, prefix="")
    return "\n".join(lines) + "\n"


def _yaml_scalar(value: Value) -> str:
    """A one-line YAML value: null, booleans and numbers as JSON writes them; strings double-quoted, unescaped HTML."""
    if isinstance(value, list):
        return "[]"
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json_encode(value)


def _yaml_block(value: Value, indent: int, lines: list[str], *, prefix: str) -> None:
    pad = " " * indent
    if isinstance(value, dict) and value:
        first = True
        for key in sorted(value):
            lead = prefix if first else pad
            first = False
            item = value[key]
            head = f"{lead}{json.dumps(key, ensure_ascii=False)}:"
            if isinstance(item, dict) and item:
                lines.append(head)
                _yaml_block(item, indent + 2, lines, prefix=" " * (indent + 2))
            elif isinstance(item, list) and item:
                lines.append(head)
                _yaml_block(item, indent, lines, prefix=pad)
            else:
                _yaml_leaf(item, head + " ", indent + 2, lines)
        return
    if isinstance(value, list) and value:
        first = True
        for item in value:
            lead = (prefix if first else pad) + "- "
            first = False
            if isinstance(item, dict | list) and item:
                _yaml_block(item, indent + 2, lines, prefix=lead)
            else:
                _yaml_leaf(item, lead, indent + 2, lines)
        return
    _yaml_leaf(value, prefix, indent + 2, lines)


def _yaml_leaf(value: Value, head: str, indent: int, lines: list[str]) -> None:
    if isinstance(value, str) and "\n" in value:
        chomping = "" if value.endswith("\n") else "-"
        lines.append(f"{head}|{chomping}")
        lines.extend((" " * indent + line) if line else "" for line in value.removesuffix("\n").split("\n"))
        return
    lines.append(head + _yaml_scalar(value))


@function("yamlencode", 1)
def _yamlencode(args: list[Value]) -> Value:
    return yaml_encode(args[0])


@function("yamldecode", 1)
def _yamldecode(args: list[Value]) -> Value:
    try:
        documents = list(yaml.safe_load_all(arg_string(args, 0)))
    except yaml.YAMLError as exc:
        raise FunctionError(f"invalid YAML: {exc}", argument=0) from None
    if len(documents) > 1:
        raise FunctionError("the YAML text holds more than one document", argument=0)
    return _from_plain(documents[0]) if documents else None


@function("csvdecode", 1)
def _csvdecode(args: list[Value]) -> Value:
    rows = list(csv.reader(io.StringIO(arg_string(args, 0))))
    if not rows:
        raise FunctionError("the CSV text has no header row", argument=0)
    header, body = rows[0], rows[1:]
    result: list[Value] = []
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise FunctionError(f"CSV row {number} has {len(row)} fields, the header has {len(header)}", argument=0)
        result.append(dict(zip(header, row, strict=True)))
    return result


@function("base64encode", 1)
def _base64encode(args: list[Value]) -> Value:
    return base64.b64encode(arg_string(args, 0).encode("utf-8")).decode("ascii")


@function("base64decode", 1)
def _base64decode(args: list[Value]) -> Value:
    try:
        raw = base64.b64decode(arg_string(args, 0), validate=True)
    except (binascii.Error, ValueError):
        raise FunctionError("the string is not valid base64", argument=0) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FunctionError("the decoded bytes are not valid UTF-8", argument=0) from None


@function("urlencode", 1)
def _urlencode(args: list[Value]) -> Value:
    return urllib.parse.quote_plus(arg_string(args, 0), safe="")


def _hasher(name: str) -> LibraryFunction:
    @function(name, 1)
    def digest(args: list[Value]) -> Value:
        return hashlib.new(name, arg_string(args, 0).encode("utf-8")).hexdigest()

    return digest


@function("bcrypt", 1, 2)
def _bcrypt(args: list[Value]) -> Value:
    try:
        import bcrypt
    except ImportError:
        raise FunctionError("bcrypt is not available in this installation (pip install bcrypt)") from None
    cost = arg_int(args, 1) if len(args) > 1 else 10
    if not 4 <= cost <= 31:
        raise FunctionError("the bcrypt cost must be between 4 and 31", argument=1)
    salt = bcrypt.gensalt(rounds=cost, prefix=b"2a")
    return bcrypt.hashpw(arg_string(args, 0).encode("utf-8"), salt).decode("ascii")


@function("rsadecrypt", 2)
def _rsadecrypt(args: list[Value]) -> Value:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        ciphertext = base64.b64decode(arg_string(args, 0), validate=True)
    except (binascii.Error, ValueError):
        raise FunctionError("the ciphertext is not valid base64", argument=0) from None
    try:
        key = serialization.load_pem_private_key(arg_string(args, 1).encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise FunctionError("the private key is not a valid PEM RSA key", argument=1) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise FunctionError("the private key is not an RSA key", argument=1)
    try:
        return key.decrypt(ciphertext, padding.PKCS1v15()).decode("utf-8")
    except ValueError:
        raise FunctionError("decryption failed") from None


@function("uuidv4", 0)
def _uuidv4(args: list[Value]) -> Value:
    return str(uuid.uuid4())


@function("uuidv5", 2)
def _uuidv5(args: list[Value]) -> Value:
    namespace_text = arg_string(args, 0)
    namespace = _UUID_NAMESPACES.get(namespace_text)
    if namespace is None:
        try:
            namespace = uuid.UUID(namespace_text)
        except ValueError:
            raise FunctionError("the namespace must be dns, url, oid, x500 or a UUID", argument=0) from None
    return str(uuid.uuid5(namespace, arg_string(args, 1)))


ENCODING_FUNCTIONS: tuple[LibraryFunction, ...] = (
    _jsonencode, _jsondecode, _yamlencode, _yamldecode, _csvdecode, _base64encode, _base64decode, _urlencode,
    _hasher("md5"), _hasher("sha1"), _hasher("sha256"), _hasher("sha512"), _bcrypt, _rsadecrypt, _uuidv4, _uuidv5,
    )  # fmt: skip
