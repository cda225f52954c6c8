// Package soak holds rekey's soak harness and security checks: tests that
// run the real rekey binary against every sink (file, AWS Secrets Manager,
// Vault KV, GitHub Actions) and three issuers (the ApexVerify simulator,
// OpenAI admin keys through the http preset, AWS IAM key pairs) while faults are
// injected, and assert invariants I1-I4 (ARCHITECTURE.md). It is a separate
// module so that Vault's dependency tree stays out of rekey's go.mod; see
// README.md.
package soak
