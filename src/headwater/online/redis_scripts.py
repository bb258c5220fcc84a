"""The Lua scripts of the Redis online stores, in one place.

``write`` compares the first :data:`~headwater.online.encoding.ORDER_BYTES` bytes of the
stored and the new record byte by byte (Lua's string ``<`` follows the server locale) and
replaces only when the new one does not sort lower (:func:`cas_script`). ``update`` reads with
a :class:`Layout`'s read script and commits with its commit script
(:mod:`~headwater.online.redis_update`); the layouts differ only in where an entity's record
and version are: :data:`ENTITY_LAYOUT` (single server: in the entity's hash) and
:data:`VIEW_LAYOUT` (cluster: in the view's own hashes, one slot).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from headwater.online.encoding import ORDER_BYTES


def cas_script(drop_version: bool) -> tuple[bytes, bytes]:
    """The write script and its SHA1. KEYS[1]: the entity hash; ARGV[1]: the view (field);
    ARGV[2]: the new record. With ``drop_version`` a record of another definition
    generation loses its version (the field '<view>#v')."""
    drop = """
if old and string.sub(old, 1, 4) ~= string.sub(new, 1, 4) then
  redis.call('HDEL', KEYS[1], ARGV[1] .. '#v')
end""" if drop_version else ""
    script = f"""
local old = redis.call('HGET', KEYS[1], ARGV[1])
local new = ARGV[2]
if old then
  for i = 1, {ORDER_BYTES} do
    local a, b = string.byte(new, i), string.byte(old, i)
    if a ~= b then
      if a == nil or (b ~= nil and a < b) then return 0 end
      break
    end
  end
end{drop}
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
""".encode()
    return script, hashlib.sha1(script).hexdigest().encode()


# The commit script. KEYS: the markers key, then the layout's keys. ARGV: the view (field),
# its version field, now, the oldest score still marking, 1 with a scope (else 0), n, c, a
# string of c bytes ('1' for an id read as unmarked, which must still be), and the prefix of
# the new versions; then per entity what it held (its version; '' when it had neither
# version nor record; a NUL byte and the record when it had a record without a version) and
# its new record ('' to leave it), whose version is the prefix and the entity's position;
# then the c ids to mark; then the layout's tail. 1 when committed, 0 (nothing written) when
# something read has changed since. @RK@/@RF@ name entity i's record, @VK@/@VF@ its version.
COMMIT_TEMPLATE = """
local field, vfield, now, oldest = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local scoped, n, c = ARGV[5] == '1', tonumber(ARGV[6]), tonumber(ARGV[7])
local unmarked, prefix = ARGV[8], ARGV[9]
local ids_at = 9 + 2 * n
local tail_at = ids_at + c
for i = 1, n do
  local held = ARGV[8 + 2 * i]
  local version = redis.call('HGET', @VK@, @VF@) or ''
  if string.byte(held, 1) == 0 then
    if version ~= '' or redis.call('HGET', @RK@, @RF@) ~= string.sub(held, 2) then return 0 end
  elseif version ~= held then
    return 0
  elseif held == '' and redis.call('HEXISTS', @RK@, @RF@) == 1 then
    return 0
  end
end
if string.find(unmarked, '1', 1, true) then
  for i = 1, c, 1000 do
    local last = math.min(i + 999, c)
    local scores = redis.call('ZMSCORE', KEYS[1], unpack(ARGV, ids_at + i, ids_at + last))
    for k = 1, last - i + 1 do
      local score = scores[k]
      if score and string.byte(unmarked, i + k - 1) == 49 and tonumber(score) > oldest then
        return 0
      end
    end
  end
end
for i = 1, n do
  local record = ARGV[9 + 2 * i]
  if record ~= '' then
    @SET@
  end
end
if scoped then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', oldest)
  for i = ids_at + 1, ids_at + c, 1000 do
    local args = {}
    for k = i, math.min(i + 999, ids_at + c) do
      args[#args + 1] = now
      args[#args + 1] = ARGV[k]
    end
    redis.call('ZADD', KEYS[1], 'NX', unpack(args))
  end
end
return 1
"""


def _commit_script(rk: str, rf: str, vk: str, vf: str, set_: str) -> bytes:
    return (COMMIT_TEMPLATE.replace("@RK@", rk).replace("@RF@", rf).replace("@VK@", vk)
            .replace("@VF@", vf).replace("@SET@", set_)).encode()


@dataclass(frozen=True)
class Layout:
    """Where an update's records and versions live, as its two scripts see them.

    The read script gets KEYS (the layout's keys), ARGV (the layout's read prefix, then per
    entity the version held, '' for none) and returns per entity two replies: the stored
    version (nil if none), then 1 when it is the one held (the record is not sent), else
    the record (nil if none)."""

    read_script: bytes
    commit_script: bytes


# Single server: KEYS are the entity hashes, field '<view>' holds the record and field
# '<view>#v' its version; the read prefix is the two field names.
ENTITY_LAYOUT = Layout(
    read_script=b"""
local field, vfield = ARGV[1], ARGV[2]
local out = {}
for i = 1, #KEYS do
  local version = redis.call('HGET', KEYS[i], vfield)
  out[2 * i - 1] = version
  if version and version == ARGV[i + 2] then
    out[2 * i] = 1
  else
    out[2 * i] = redis.call('HGET', KEYS[i], field)
  end
end
return out
""",
    commit_script=_commit_script(
        "KEYS[i + 1]", "field", "KEYS[i + 1]", "vfield",
        "redis.call('HSET', KEYS[i + 1], field, record, vfield, prefix .. i)"))

# Cluster: KEYS are the view's records hash and versions hash (one slot), fields are the
# entity keys; the read prefix is the n entity keys, and the commit's tail too.
VIEW_LAYOUT = Layout(
    read_script=b"""
local n = #ARGV / 2
local out = {}
for i = 1, n do
  local version = redis.call('HGET', KEYS[2], ARGV[i])
  out[2 * i - 1] = version
  if version and version == ARGV[n + i] then
    out[2 * i] = 1
  else
    out[2 * i] = redis.call('HGET', KEYS[1], ARGV[i])
  end
end
return out
""",
    commit_script=_commit_script(
        "KEYS[2]", "ARGV[tail_at + i]", "KEYS[3]", "ARGV[tail_at + i]",
        "redis.call('HSET', KEYS[2], ARGV[tail_at + i], record) "
        "redis.call('HSET', KEYS[3], ARGV[tail_at + i], prefix .. i)"))


