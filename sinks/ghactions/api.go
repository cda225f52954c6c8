package ghactions

import (
	"context"
	"net/url"

	"github.com/google/go-github/v62/github"
)

// secretsAPI is the narrow seam over go-github: the calls the sink makes on
// one scope's secrets.
type secretsAPI interface {
	publicKey(ctx context.Context) (*github.PublicKey, *github.Response, error)
	get(ctx context.Context, name string) (*github.Secret, *github.Response, error)
	put(ctx context.Context, name, keyID, sealed string) (*github.Response, error)
}

// repoSecrets are a repository's Actions or Dependabot secrets.
type repoSecrets struct {
	c           *github.Client
	owner, repo string
	dependabot  bool
}

func (a *repoSecrets) publicKey(ctx context.Context) (*github.PublicKey, *github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.GetRepoPublicKey(ctx, a.owner, a.repo)
	}
	return a.c.Actions.GetRepoPublicKey(ctx, a.owner, a.repo)
}

func (a *repoSecrets) get(ctx context.Context, name string) (*github.Secret, *github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.GetRepoSecret(ctx, a.owner, a.repo, name)
	}
	return a.c.Actions.GetRepoSecret(ctx, a.owner, a.repo, name)
}

func (a *repoSecrets) put(ctx context.Context, name, keyID, sealed string) (*github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.CreateOrUpdateRepoSecret(ctx, a.owner, a.repo,
			&github.DependabotEncryptedSecret{Name: name, KeyID: keyID, EncryptedValue: sealed})
	}
	return a.c.Actions.CreateOrUpdateRepoSecret(ctx, a.owner, a.repo,
		&github.EncryptedSecret{Name: name, KeyID: keyID, EncryptedValue: sealed})
}

// envSecrets are an environment's secrets; GitHub addresses them by the
// repository's numeric ID.
type envSecrets struct {
	c      *github.Client
	repoID int
	env    string
}

func (a *envSecrets) publicKey(ctx context.Context) (*github.PublicKey, *github.Response, error) {
	return a.c.Actions.GetEnvPublicKey(ctx, a.repoID, url.PathEscape(a.env))
}

func (a *envSecrets) get(ctx context.Context, name string) (*github.Secret, *github.Response, error) {
	return a.c.Actions.GetEnvSecret(ctx, a.repoID, url.PathEscape(a.env), name)
}

func (a *envSecrets) put(ctx context.Context, name, keyID, sealed string) (*github.Response, error) {
	return a.c.Actions.CreateOrUpdateEnvSecret(ctx, a.repoID, url.PathEscape(a.env),
		&github.EncryptedSecret{Name: name, KeyID: keyID, EncryptedValue: sealed})
}

// orgSecrets are an organization's Actions or Dependabot secrets; every
// write sets the visibility (and selected repositories) too.
type orgSecrets struct {
	c          *github.Client
	org        string
	visibility string
	ids        []int64
	dependabot bool
}

func (a *orgSecrets) publicKey(ctx context.Context) (*github.PublicKey, *github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.GetOrgPublicKey(ctx, a.org)
	}
	return a.c.Actions.GetOrgPublicKey(ctx, a.org)
}

func (a *orgSecrets) get(ctx context.Context, name string) (*github.Secret, *github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.GetOrgSecret(ctx, a.org, name)
	}
	return a.c.Actions.GetOrgSecret(ctx, a.org, name)
}

func (a *orgSecrets) put(ctx context.Context, name, keyID, sealed string) (*github.Response, error) {
	if a.dependabot {
		return a.c.Dependabot.CreateOrUpdateOrgSecret(ctx, a.org, &github.DependabotEncryptedSecret{
			Name: name, KeyID: keyID, EncryptedValue: sealed,
			Visibility: a.visibility, SelectedRepositoryIDs: github.DependabotSecretsSelectedRepoIDs(a.ids),
		})
	}
	return a.c.Actions.CreateOrUpdateOrgSecret(ctx, a.org, &github.EncryptedSecret{
		Name: name, KeyID: keyID, EncryptedValue: sealed,
		Visibility: a.visibility, SelectedRepositoryIDs: github.SelectedRepoIDs(a.ids),
	})
}
