package awsiam

import (
	"errors"
	"fmt"

	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/issuers"
)

// PolicyFile is where the repository keeps the IAM policy rekey needs.
const PolicyFile = "deploy/aws/rekey-iam-policy.json"

// fail turns an SDK error of action op into the issuer's error: prefixed,
// naming the action and user, mapped to the issuers sentinels and marked
// permanent where retrying cannot help. Throttling and 5xx errors were
// already retried by the SDK (maxAttempts) and stay retryable.
func (i *Issuer) fail(op string, err error) error {
	code := errorCode(err)
	action := op
	if op != "sts:GetCallerIdentity" {
		action = "iam:" + op
	}
	switch code {
	case "":
		return fmt.Errorf("awsiam: %s on user %s: %w", action, i.user, err)
	case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
		return backoff.Permanent(fmt.Errorf("awsiam: %s on user %s: access denied: rekey's AWS credentials need %s on arn:aws:iam::*:user/%s (see %s): %w: %w",
			action, i.user, action, i.user, PolicyFile, ErrAccessDenied, err))
	case "NoSuchEntity":
		return backoff.Permanent(fmt.Errorf("awsiam: %s on user %s: %w: %w", action, i.user, issuers.ErrNotFound, err))
	case "LimitExceeded":
		return backoff.Permanent(fmt.Errorf("awsiam: %s on user %s: %w: %w", action, i.user, issuers.ErrKeyLimit, err))
	case "InvalidClientTokenId", "SignatureDoesNotMatch", "ExpiredToken", "MissingAuthenticationToken", "IncompleteSignature":
		return backoff.Permanent(fmt.Errorf("awsiam: %s on user %s: AWS refused rekey's own credentials (%s): %w", action, i.user, code, err))
	case "ValidationError", "InvalidInput", "InvalidAction", "MalformedQueryString":
		return backoff.Permanent(fmt.Errorf("awsiam: %s on user %s: %s: %w", action, i.user, code, err))
	}
	return fmt.Errorf("awsiam: %s on user %s: %s: %w", action, i.user, code, err)
}

// errorCode returns the AWS error code in err's chain, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
