"""Nomad's HCL2 date and network functions: timeadd, formatdate, cidrhost, cidrnetmask, cidrsubnet, cidrsubnets.

Why separate: both follow Go rather than Python. Timestamps are RFC 3339 as Go's time.Parse reads them and are
printed without fractions; durations are Go duration strings (`1h30m`, no days); formatdate uses Terraform's
spec letters (`YYYY-MM-DD hh:mm`), not strftime; cidrsubnets packs subnets in order as go-cty-funcs does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

from nomad_operator.durations import InvalidDuration, parse_duration
from nomad_operator.jobspec.function_support import LibraryFunction, arg_int, arg_string, function
from nomad_operator.jobspec.hcl_types import Value
from nomad_operator.jobspec.scope import FunctionError

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]  # fmt: skip
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def parse_timestamp(text: str, argument: int) -> dt.datetime:
    """An RFC 3339 timestamp as Go's time.Parse(time.RFC3339) accepts it."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", text):
        raise FunctionError(f"{text!r} is not an RFC 3339 timestamp", argument=argument)
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FunctionError(f"{text!r} is not a valid timestamp: {exc}", argument=argument) from None


def _duration(text: str, argument: int) -> dt.timedelta:
    """A Go duration string ("1h30m", "-10s", "1.5h"), read as Go's time.ParseDuration reads it."""
    try:
        nanoseconds = parse_duration(text)
    except InvalidDuration:
        raise FunctionError(f"{text!r} is not a duration (e.g. 1h30m, 10s, 250ms)", argument=argument) from None
    return dt.timedelta(microseconds=nanoseconds / 1000)


def _rfc3339(moment: dt.datetime) -> str:
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    offset = moment.utcoffset() or dt.timedelta(0)
    if offset == dt.timedelta(0):
        return text + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@function("timeadd", 2)
def _timeadd(args: list[Value]) -> Value:
    moment = parse_timestamp(arg_string(args, 0), 0)
    return _rfc3339(moment + _duration(arg_string(args, 1), 1))


@function("formatdate", 2)
def _formatdate(args: list[Value]) -> Value:
    spec, moment = arg_string(args, 0), parse_timestamp(arg_string(args, 1), 1)
    out: list[str] = []
    index = 0
    while index < len(spec):
        char = spec[index]
        if char == "'":
            end = spec.find("'", index + 1)
            if end < 0:
                raise FunctionError("unterminated quote in the date format", argument=0)
            out.append("'" if end == index + 1 else spec[index + 1 : end])
            index = end + 1
            continue
        if not char.isalpha():
            out.append(char)
            index += 1
            continue
        run = index
        while run < len(spec) and spec[run] == char:
            run += 1
        out.append(_date_token(spec[index:run], moment))
        index = run
    return "".join(out)


def _date_token(token: str, moment: dt.datetime) -> str:
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours12 = moment.hour % 12 or 12
    table = {
        "YYYY": f"{moment.year:04d}", "YY": f"{moment.year % 100:02d}",
        "MMMM": _MONTHS[moment.month - 1], "MMM": _MONTHS[moment.month - 1][:3],
        "MM": f"{moment.month:02d}", "M": str(moment.month),
        "DD": f"{moment.day:02d}", "D": str(moment.day),
        "EEEE": _DAYS[moment.weekday()], "EEE": _DAYS[moment.weekday()][:3],
        "hh": f"{moment.hour:02d}", "h": str(moment.hour),
        "HH": f"{hours12:02d}", "H": str(hours12),
        "AA": "AM" if moment.hour < 12 else "PM", "aa": "am" if moment.hour < 12 else "pm",
        "mm": f"{moment.minute:02d}", "m": str(moment.minute),
        "ss": f"{moment.second:02d}", "s": str(moment.second),
        "ZZZZZ": f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}",
        "ZZZZ": f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}",
        "ZZZ": "UTC" if minutes == 0 else f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}",
        "Z": "Z" if minutes == 0 else f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}",
    }  # fmt: skip
    if token not in table:
        raise FunctionError(f"invalid date format verb {token!r}", argument=0)
    return table[token]


def _network(args: list[Value]) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(arg_string(args, 0), strict=False)
    except ValueError as exc:
        raise FunctionError(f"invalid CIDR prefix: {exc}", argument=0) from None


@function("cidrhost", 2)
def _cidrhost(args: list[Value]) -> Value:
    network, number = _network(args), arg_int(args, 1)
    if number < 0:
        number += network.num_addresses
    if not 0 <= number < network.num_addresses:
        raise FunctionError(f"host number {args[1]} does not fit in {network}", argument=1)
    return str(network.network_address + number)


@function("cidrnetmask", 1)
def _cidrnetmask(args: list[Value]) -> Value:
    network = _network(args)
    if network.version != 4:
        raise FunctionError("cidrnetmask only works with IPv4 prefixes", argument=0)
    return str(network.netmask)


def _subnet(network: ipaddress.IPv4Network | ipaddress.IPv6Network, newbits: int, number: int) -> str:
    prefix = network.prefixlen + newbits
    if newbits < 0 or prefix > network.max_prefixlen:
        raise FunctionError(f"cannot extend the prefix /{network.prefixlen} by {newbits} bits", argument=1)
    if not 0 <= number < 2**newbits:
        raise FunctionError(f"network number {number} does not fit in {newbits} bits", argument=2)
    base = int(network.network_address) + (number << (network.max_prefixlen - prefix))
    return str(ipaddress.ip_network((base, prefix)))


@function("cidrsubnet", 3)
def _cidrsubnet(args: list[Value]) -> Value:
    return _subnet(_network(args), arg_int(args, 1), arg_int(args, 2))


@function("cidrsubnets", 1, None)
def _cidrsubnets(args: list[Value]) -> Value:
    network = _network(args)
    results: list[Value] = []
    cursor = int(network.network_address)
    for index in range(1, len(args)):
        prefix = network.prefixlen + arg_int(args, index)
        if prefix > network.max_prefixlen or prefix <= network.prefixlen:
            raise FunctionError(f"invalid new bits {args[index]}", argument=index)
        size = 1 << (network.max_prefixlen - prefix)
        cursor = (cursor + size - 1) // size * size
        if cursor + size > int(network.network_address) + network.num_addresses:
            raise FunctionError(
                f"not enough remaining address space for a subnet with prefix /{prefix}", argument=index
            )
        results.append(str(ipaddress.ip_network((cursor, prefix))))
        cursor += size
    return results


TIME_NETWORK_FUNCTIONS: tuple[LibraryFunction, ...] = (
    _timeadd, _formatdate, _cidrhost, _cidrnetmask, _cidrsubnet, _cidrsubnets,
)  # fmt: skip
