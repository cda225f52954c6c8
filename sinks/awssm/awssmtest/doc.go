// Package awssmtest runs the aws-secretsmanager sink against kumo, an
// in-process AWS emulator. It is a module of its own so that kumo's large
// dependency tree stays out of rekey's go.mod; run it with
//
//	cd sinks/awssm/awssmtest && go test -race ./...
//
// The protocol-faithful server (sinks/awssm/fakesm) covers what kumo lacks
// (UpdateSecretVersionStage, ClientRequestToken idempotency, stage rules);
// its tests live with the sink in the root module.
//
// It also cross-checks issuers/awsiam/fakeiam, the IAM the aws-iam issuer
// is tested against, with kumo's IAM: CreateAccessKey, ListAccessKeys,
// DeleteAccessKey and the quota of two keys per user must behave alike in
// both (iam_kumo_test.go).
package awssmtest
