# Minimal policy for a rekey `vault-kv` sink with kv_version: 1.
# Replace "secret" with the sink's mount and "crm/apexverify" with its path.
#
# KV v1 keeps no versions: rekey reads the secret, sets its field and writes
# the whole secret back. Rollback is a write of the old value.
path "secret/crm/apexverify" {
  capabilities = ["create", "read", "update"]
}
