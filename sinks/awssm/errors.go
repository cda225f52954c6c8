package awssm

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
	"github.com/cenkalti/backoff/v5"

	"github.com/rekeyhq/rekey/internal/secret"
)

// permanentCodes are AWS error codes that no retry can fix: permissions,
// missing resources, KMS trouble and requests AWS rejects as invalid.
// Throttling and 5xx errors have already been retried by the SDK's retryer
// and stay retryable for the engine.
var permanentCodes = map[string]bool{
	"AccessDeniedException":               true,
	"AccessDenied":                        true,
	"UnauthorizedOperation":               true,
	"UnrecognizedClientException":         true,
	"InvalidClientTokenId":                true,
	"InvalidSignatureException":           true,
	"SignatureDoesNotMatch":               true,
	"ExpiredTokenException":               true,
	"ResourceNotFoundException":           true,
	"ResourceExistsException":             true,
	"InvalidParameterException":           true,
	"InvalidRequestException":             true,
	"ValidationException":                 true,
	"MalformedPolicyDocumentException":    true,
	"PreconditionNotMetException":         true,
	"LimitExceededException":              true,
	"EncryptionFailure":                   true,
	"DecryptionFailure":                   true,
	"KMSAccessDeniedException":            true,
	"KMSDisabledException":                true,
	"KMSInvalidStateException":            true,
	"KMSNotFoundException":                true,
	"KMSInvalidKeyUsageException":         true,
	"UnknownOperationException":           true,
	"SerializationException":              true,
	"IncompleteSignature":                 true,
	"MissingAuthenticationTokenException": true,
}

// fail turns an SDK error from operation op into the sink's error: prefixed
// with the secret ID and the AWS error code, scrubbed of values (in case an
// SDK error echoes a request body), and marked permanent where retrying
// cannot help.
func (s *Sink) fail(op string, err error, values ...secret.Value) error {
	err = secret.Scrub(err, values...)
	code := errorCode(err)
	if code == "" {
		return fmt.Errorf("awssm: %s %s: %w", op, s.cfg.SecretID, err)
	}
	wrapped := fmt.Errorf("awssm: %s %s: %s: %w", op, s.cfg.SecretID, code, err)
	if permanentCodes[code] || strings.HasPrefix(code, "KMS") {
		return backoff.Permanent(wrapped)
	}
	return wrapped
}

// errorCode returns the AWS error code in err's chain, or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func tag(k, v string) types.Tag {
	return types.Tag{Key: aws.String(k), Value: aws.String(v)}
}
