"""Nomad's HCL2 string and number functions (cty stdlib), including `format`'s Go-style verbs.

Why separate: Go's string functions differ from Python's in small ways that change job text: `split("", s)` splits
into characters, `title` capitalises after any non-letter, `replace` is a plain substring replace while
`regex_replace` uses `$1` references, `chomp` removes every trailing newline. Each function here follows Go.
"""

from __future__ import annotations

import json
import math
import re

from nomad_operator.jobspec.function_support import (
    LibraryFunction,
    arg_int,
    arg_list,
    arg_number,
    arg_string,
    arg_strings,
    function,
)
from nomad_operator.jobspec.hcl_types import (
    ConversionError,
    Value,
    normalize_number,
    number_to_string,
    to_number,
    to_string,
    type_name,
)
from nomad_operator.jobspec.scope import FunctionError

_VERB = re.compile(r"%(?:\[(\d+)\])?([-+# 0]*)(\d+)?(?:\.(\d*))?([a-zA-Z%])")
_GO_GROUP_REF = re.compile(r"\$(\$|\{(\w+)\}|(\w+))")


@function("chomp", 1)
def _chomp(args: list[Value]) -> Value:
    return re.sub(r"(?:\r\n|\n|\r)+\Z", "", arg_string(args, 0))


@function("indent", 2)
def _indent(args: list[Value]) -> Value:
    return arg_string(args, 1).replace("\n", "\n" + " " * arg_int(args, 0))


@function("join", 2, None)
def _join(args: list[Value]) -> Value:
    separator = arg_string(args, 0)
    return separator.join(item for index in range(1, len(args)) for item in arg_strings(args, index))


@function("lower", 1)
def _lower(args: list[Value]) -> Value:
    return arg_string(args, 0).lower()


@function("upper", 1)
def _upper(args: list[Value]) -> Value:
    return arg_string(args, 0).upper()


@function("title", 1)
def _title(args: list[Value]) -> Value:
    out: list[str] = []
    previous = " "
    for char in arg_string(args, 0):
        word_char = previous.isalnum() or previous == "_"
        out.append(char if word_char else char.upper())
        previous = char
    return "".join(out)


@function("replace", 3)
def _replace(args: list[Value]) -> Value:
    return arg_string(args, 0).replace(arg_string(args, 1), arg_string(args, 2))


@function("regex_replace", 3)
def _regex_replace(args: list[Value]) -> Value:
    text, pattern, replacement = arg_string(args, 0), arg_string(args, 1), arg_string(args, 2)
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise FunctionError(f"invalid regular expression: {exc}", argument=1) from None

    def expand(match: re.Match[str]) -> str:
        def group(reference: re.Match[str]) -> str:
            if reference.group(1) == "$":
                return "$"
            name = reference.group(2) or reference.group(3)
            try:
                value = match.group(int(name) if name.isdigit() else name)
            except (IndexError, re.error):
                return ""
            return value or ""

        return _GO_GROUP_REF.sub(group, replacement)

    return compiled.sub(expand, text)


@function("split", 2)
def _split(args: list[Value]) -> Value:
    separator, text = arg_string(args, 0), arg_string(args, 1)
    if separator == "":
        return list(text)
    return text.split(separator)


@function("strlen", 1)
def _strlen(args: list[Value]) -> Value:
    return len(arg_string(args, 0))


@function("reverse", 1)
def _reverse(args: list[Value]) -> Value:
    # Nomad binds both reverse and strrev to cty's *string* ReverseFunc.
    return arg_string(args, 0)[::-1]


@function("strrev", 1)
def _strrev(args: list[Value]) -> Value:
    return arg_string(args, 0)[::-1]


@function("substr", 3)
def _substr(args: list[Value]) -> Value:
    text, offset, length = arg_string(args, 0), arg_int(args, 1), arg_int(args, 2)
    if offset < 0:
        offset = max(len(text) + offset, 0)
    if offset > len(text):
        return ""
    if length < 0:
        return text[offset:]
    return text[offset : offset + length]


@function("trim", 2)
def _trim(args: list[Value]) -> Value:
    return arg_string(args, 0).strip(arg_string(args, 1))


@function("trimprefix", 2)
def _trimprefix(args: list[Value]) -> Value:
    return arg_string(args, 0).removeprefix(arg_string(args, 1))


@function("trimsuffix", 2)
def _trimsuffix(args: list[Value]) -> Value:
    return arg_string(args, 0).removesuffix(arg_string(args, 1))


@function("trimspace", 1)
def _trimspace(args: list[Value]) -> Value:
    return arg_string(args, 0).strip()


@function("abs", 1)
def _abs(args: list[Value]) -> Value:
    return abs(arg_number(args, 0))


@function("ceil", 1)
def _ceil(args: list[Value]) -> Value:
    number = arg_number(args, 0)
    return number if math.isinf(number) else math.ceil(number)


@function("floor", 1)
def _floor(args: list[Value]) -> Value:
    number = arg_number(args, 0)
    return number if math.isinf(number) else math.floor(number)


@function("log", 2)
def _log(args: list[Value]) -> Value:
    number, base = arg_number(args, 0), arg_number(args, 1)
    try:
        return normalize_number(math.log(number, base))
    except (ValueError, ZeroDivisionError):
        raise FunctionError(f"log({number}, {base}) is undefined") from None


@function("pow", 2)
def _pow(args: list[Value]) -> Value:
    base, exponent = arg_number(args, 0), arg_number(args, 1)
    try:
        return normalize_number(
            base**exponent if isinstance(exponent, int) and exponent >= 0 else float(base) ** exponent
        )
    except (OverflowError, ZeroDivisionError) as exc:
        raise FunctionError(f"pow({base}, {exponent}): {exc}") from None


@function("signum", 1)
def _signum(args: list[Value]) -> Value:
    number = arg_number(args, 0)
    return (number > 0) - (number < 0)


@function("parseint", 2)
def _parseint(args: list[Value]) -> Value:
    text, base = arg_string(args, 0), arg_int(args, 1)
    if not 2 <= base <= 62:
        raise FunctionError("the base must be between 2 and 62", argument=1)
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if not body:
        raise FunctionError(f"cannot parse {text!r} as a base {base} integer", argument=0)
    value = 0
    for char in body:
        position = digits.find(char) if base > 36 else digits.find(char.lower())
        if position < 0 or position >= base:
            raise FunctionError(f"cannot parse {text!r} as a base {base} integer", argument=0)
        value = value * base + position
    return sign * value


@function("format", 1, None)
def _format(args: list[Value]) -> Value:
    return format_string(arg_string(args, 0), args[1:])


@function("formatlist", 1, None)
def _formatlist(args: list[Value]) -> Value:
    spec = arg_string(args, 0)
    rest = args[1:]
    lengths = {len(arg_list(args, index + 1)) for index, value in enumerate(rest) if isinstance(value, list)}
    if len(lengths) > 1:
        raise FunctionError("all list arguments must have the same length")
    if not lengths:
        return [format_string(spec, rest)]
    count = lengths.pop()
    return [
        format_string(spec, [value[i] if isinstance(value, list) else value for value in rest]) for i in range(count)
    ]


def format_string(spec: str, values: list[Value]) -> str:
    """Go's fmt verbs as cty's format implements them (%v %#v %s %q %d %f %e %g %t %x %X %o %b and %%)."""
    out: list[str] = []
    position = 0
    next_argument = 0
    for match in _VERB.finditer(spec):
        out.append(spec[position : match.start()])
        position = match.end()
        explicit, flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        index = int(explicit) - 1 if explicit else next_argument
        next_argument = index + 1
        if index >= len(values):
            raise FunctionError(f"too few arguments for the format string (verb {match.group()})")
        text = _format_one(values[index], verb, flags, precision)
        if width and len(text) < int(width):
            pad = int(width) - len(text)
            if "-" in flags:
                text += " " * pad
            elif "0" in flags and verb in "dfeEgGxXob" and text[:1] in "+-":
                text = text[0] + "0" * pad + text[1:]
            else:
                text = ("0" if "0" in flags and verb in "dfeEgGxXob" else " ") * pad + text
        out.append(text)
    out.append(spec[position:])
    if "%" in spec[position:]:
        raise FunctionError(f"unrecognised format verb in {spec[position:]!r}")
    return "".join(out)


def _format_one(value: Value, verb: str, flags: str, precision: str | None) -> str:
    try:
        if verb == "v":
            if "#" in flags:
                return _json(value)
            return _json(value) if isinstance(value, list | dict) else ("null" if value is None else to_string(value))
        if value is None:
            raise FunctionError(f"unsupported value for %{verb}: null")
        if verb == "s":
            return to_string(value) if not isinstance(value, list | dict) else _json(value)
        if verb == "q":
            return json.dumps(to_string(value), ensure_ascii=False)
        if verb == "t":
            if not isinstance(value, bool) and value not in ("true", "false"):
                raise FunctionError(f"%t needs a bool, got {type_name(value)}")
            return to_string(value)
        number = to_number(value)
        if verb in "dxXob":
            if not isinstance(number, int):
                raise FunctionError(f"%{verb} needs a whole number, got {number_to_string(number)}")
            sign = "+" if "+" in flags and number >= 0 else ""
            return sign + format(number, {"d": "d", "x": "x", "X": "X", "o": "o", "b": "b"}[verb])
        digits = int(precision) if precision not in (None, "") else (6 if verb in "feE" else -1)
        sign = "+" if "+" in flags and number >= 0 else ""
        if verb == "f":
            return sign + f"{number:.{digits}f}"
        if verb in "eE":
            text = f"{number:.{digits}{verb}}"
            return sign + re.sub(r"([eE][+-])(\d)$", r"\g<1>0\2", text)
        if verb in "gG":
            return sign + (number_to_string(number) if digits < 0 else f"{number:.{digits}{verb}}")
    except ConversionError as exc:
        raise FunctionError(f"%{verb}: {exc}") from None
    raise FunctionError(f"unsupported format verb %{verb}")


def _json(value: Value) -> str:
    from nomad_operator.jobspec.functions_encoding import json_encode

    return json_encode(value)


STRING_FUNCTIONS: tuple[LibraryFunction, ...] = (
    _chomp, _indent, _join, _lower, _upper, _title, _replace, _regex_replace, _split, _strlen, _reverse, _strrev,
    _substr, _trim, _trimprefix, _trimsuffix, _trimspace, _abs, _ceil, _floor, _log, _pow, _signum, _parseint,
    _format, _formatlist,
)  # fmt: skip
