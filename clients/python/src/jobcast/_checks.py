"""Client-side checks mirroring the server's rules (shared/src/protocol/ids.rs, values.rs,
user.rs) where they are simple. The sender stays the authority: these only catch mistakes
before a request is sent."""

from __future__ import annotations

import math
import re
import unicodedata

from .errors import ValidationError

#: Job, event, correlation and message ids: 1-128 characters of ``[A-Za-z0-9_.:-]``.
ID_MAX_LEN = 128
#: User ids: 1-256 printable characters without spaces or invisible characters.
USER_ID_MAX_LEN = 256
#: Stage names: non-blank, at most 128 characters.
STAGE_MAX_LEN = 128
#: Notification and alert titles.
TITLE_MAX_LEN = 200
#: Notification and alert texts.
TEXT_MAX_LEN = 4_000

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_ID_RULE = "must be 1-128 characters of A-Z a-z 0-9 _ . : -"


def _is_hidden(c: str) -> bool:
    """Characters that show nothing or reorder text (``is_hidden_char`` in ids.rs)."""
    o = ord(c)
    return (
        o in (0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFEFF, 0xFFA0)
        or 0x180B <= o <= 0x180F
        or 0x200B <= o <= 0x200F
        or 0x2028 <= o <= 0x202E
        or 0x2060 <= o <= 0x206F
        or 0xFE00 <= o <= 0xFE0F
        or 0xFFF0 <= o <= 0xFFFB
        or 0x1D173 <= o <= 0x1D17A
        or 0xE0000 <= o <= 0xE0FFF
    )


def _is_control(c: str) -> bool:
    return unicodedata.category(c) == "Cc"


def check_id(field: str, value: object) -> str:
    """A job, event, correlation or message id."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string (got {type(value).__name__})")
    if not _ID.fullmatch(value):
        raise ValidationError(field, f"{_ID_RULE} (got {value!r:.80})")
    return value


def check_optional_id(field: str, value: object) -> str | None:
    return None if value is None else check_id(field, value)


def _user_char(c: str) -> bool:
    if c.isascii():
        return 0x21 <= ord(c) <= 0x7E
    return not _is_control(c) and not c.isspace() and not _is_hidden(c)


def check_user_id(field: str, value: object) -> str:
    """A user id: 1-256 printable characters, no spaces, no invisible characters."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string (got {type(value).__name__})")
    if not 1 <= len(value) <= USER_ID_MAX_LEN or not all(map(_user_char, value)):
        raise ValidationError(
            field,
            "must be 1-256 printable characters without spaces or invisible characters "
            f"(got {value!r:.80})",
        )
    return value


def check_optional_user_id(field: str, value: object) -> str | None:
    return None if value is None else check_user_id(field, value)


def check_stage(field: str, value: object) -> str:
    """A stage name: non-blank, at most 128 characters, no control or invisible characters
    (the emoji joiner and variation selectors are allowed)."""
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string (got {type(value).__name__})")
    bad = any(
        _is_control(c) or (_is_hidden(c) and not (c == "\u200d" or "\ufe00" <= c <= "\ufe0f"))
        for c in value
    )
    if not value.strip() or len(value) > STAGE_MAX_LEN or bad:
        raise ValidationError(
            field,
            "must be a non-blank name of at most 128 characters, without control or "
            "invisible characters",
        )
    return value


def check_percent(field: str, value: object) -> float:
    """A percentage: a finite number within 0 and 100."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field, f"must be a number (got {type(value).__name__})")
    if not (math.isfinite(value) and 0 <= value <= 100):
        raise ValidationError(field, f"must be a number within 0 and 100 (got {value})")
    return value


def check_count(field: str, value: object) -> int:
    """A non-negative integer (``u64`` on the server)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValidationError(field, f"must be a non-negative integer (got {value!r})")
    return value


def check_string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string (got {type(value).__name__})")
    return value


def check_title(field: str, value: object) -> str:
    text = check_string(field, value)
    if not text.strip():
        raise ValidationError(field, "must not be empty")
    if len(text) > TITLE_MAX_LEN:
        raise ValidationError(field, f"is longer than {TITLE_MAX_LEN} characters")
    return text


def check_text(field: str, value: object) -> str:
    text = check_string(field, value)
    if len(text) > TEXT_MAX_LEN:
        raise ValidationError(field, f"is longer than {TEXT_MAX_LEN} characters")
    return text


def check_choice(field: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValidationError(field, f"must be one of {', '.join(choices)} (got {value!r:.80})")
    assert isinstance(value, str)
    return value
