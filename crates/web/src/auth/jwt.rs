//! Sign-in tokens: HS256 JWTs naming the operator, the sign-in (a row the store keeps, so it
//! can be ended early) and the version of their credentials.

use crate::error::ApiError;
use cartwright_core::ids::OperatorId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;

const ISSUER: &str = "cartwright";

/// The claims of a sign-in token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The operator's id.
    pub sub: String,
    /// Their credentials' version when the token was issued; a change voids the token.
    pub ver: i64,
    /// The sign-in it belongs to; ending it voids the token. Tokens issued before sign-ins
    /// were recorded have none and are refused.
    #[serde(default)]
    pub sid: Option<i64>,
    /// Issuer.
    pub iss: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
}

impl Claims {
    /// The operator the token names.
    pub fn operator(&self) -> Option<OperatorId> {
        self.sub.parse().ok().map(OperatorId)
    }
}

/// Issues and checks sign-in tokens.
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Jwt {
    /// A signer under a 256-bit key, issuing tokens valid for `ttl`.
    pub fn new(key: &[u8; 32], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            ttl,
        }
    }

    /// When a token issued now expires (whole seconds, as the token says it).
    pub fn expiry(&self) -> OffsetDateTime {
        let expires = OffsetDateTime::now_utc() + self.ttl;
        expires.replace_nanosecond(0).unwrap_or(expires)
    }

    /// A token for sign-in `sid` of `operator` at credentials version `ver`, expiring at
    /// `expires` (from [`Jwt::expiry`]).
    pub fn issue(
        &self,
        operator: OperatorId,
        ver: i64,
        sid: i64,
        expires: OffsetDateTime,
    ) -> Result<String, ApiError> {
        let claims = Claims {
            sub: operator.to_string(),
            ver,
            sid: Some(sid),
            iss: ISSUER.into(),
            iat: OffsetDateTime::now_utc().unix_timestamp(),
            exp: expires.unix_timestamp(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(&e))
    }

    /// Checks signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    ApiError::unauthorized("token expired; sign in again")
                }
                _ => ApiError::unauthorized("invalid token"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let jwt = Jwt::new(&[7; 32], Duration::from_secs(60));
        let token = jwt.issue(OperatorId(3), 2, 9, jwt.expiry()).unwrap();
        let claims = jwt.verify(&token).unwrap();
        assert_eq!(claims.operator(), Some(OperatorId(3)));
        assert_eq!(claims.ver, 2);
        assert_eq!(claims.sid, Some(9));
        let other = Jwt::new(&[8; 32], Duration::from_secs(60));
        assert!(other.verify(&token).is_err());
        assert!(jwt.verify("not.a.token").is_err());
    }
}
