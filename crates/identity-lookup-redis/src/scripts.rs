//! The Lua scripts: every multi-key change is one atomic script, so a
//! failure never leaves half a write behind.

/// KEYS: activation, lock. ARGV: lock id, ttl ms.
/// Takes the lock unless an activation exists or the lock is held.
pub(crate) const ACQUIRE: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"#;

/// KEYS: activation, lock, member set. ARGV: lock id, member, address, pid id.
/// Stores the activation only while the lock is ours, then releases it.
pub(crate) const STORE: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'member', ARGV[2], 'address', ARGV[3], 'id', ARGV[4])
redis.call('SADD', KEYS[3], KEYS[1])
redis.call('DEL', KEYS[2])
return 1
"#;

/// KEYS: lock. ARGV: lock id. Compare-and-delete.
pub(crate) const UNLOCK: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// KEYS: activation. ARGV: address, pid id, member-set prefix.
/// Removes the activation if it is still that pid.
pub(crate) const REMOVE: &str = r#"
local v = redis.call('HMGET', KEYS[1], 'address', 'id', 'member')
if v[1] == ARGV[1] and v[2] == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', ARGV[3] .. v[3], KEYS[1])
  return 1
end
return 0
"#;

/// KEYS: member set. ARGV: member id.
/// Removes every activation the member set lists that still belongs to it.
pub(crate) const REMOVE_MEMBER: &str = r#"
local n = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('HGET', key, 'member') == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
"#;
