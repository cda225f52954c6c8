# Minimal policy for a rekey `vault-kv` sink on a KV version 2 mount.
# Replace "secret" with the sink's mount and "crm/apexverify" with its path.
#
# create/update write new versions (check-and-set included); read serves
# read-back, the idempotency check and rollback, which reads older versions
# with ?version=N. rekey never deletes, destroys or touches metadata.
path "secret/data/crm/apexverify" {
  capabilities = ["create", "read", "update"]
}
