//! Which table locations a cluster process may open.

use url::Url;

use crate::session::StorageOpener;
use crate::storage::StorageRef;
use crate::{Error, Result};

/// Opens table locations under a set of roots and refuses every other:
/// a plan received from the network names locations, and a process reads
/// only what its own configuration serves.
#[derive(Clone)]
pub struct AllowedLocations {
    roots: Vec<Url>,
    opener: StorageOpener,
}

impl std::fmt::Debug for AllowedLocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AllowedLocations")
            .field(
                "roots",
                &self.roots.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl AllowedLocations {
    /// Locations under `roots` (paths or URLs), opened with `opener`.
    pub fn new<'a>(
        roots: impl IntoIterator<Item = &'a str>,
        opener: StorageOpener,
    ) -> Result<Self> {
        let roots = roots
            .into_iter()
            .map(normalized)
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { roots, opener })
    }

    /// Whether `location` is under one of the roots.
    pub fn check(&self, location: &str) -> Result<Url> {
        let url = normalized(location)?;
        let inside = self.roots.iter().any(|root| {
            url.scheme() == root.scheme()
                && url.host_str() == root.host_str()
                && url.port() == root.port()
                && url.path().starts_with(root.path())
        });
        if inside {
            Ok(url)
        } else {
            Err(Error::NotAllowed(format!(
                "{location} is not under a root this process serves"
            )))
        }
    }

    /// The storage of `location`, if it is under one of the roots.
    pub fn open(&self, location: &str) -> Result<StorageRef> {
        let url = self.check(location)?;
        (self.opener)(url.as_str())
    }
}

/// `location` as a URL whose path ends in `/`, refusing `.` and `..`
/// segments that would climb out of a root.
fn normalized(location: &str) -> Result<Url> {
    let url = crate::storage::location_url(location)?;
    let climbs = url.path().split('/').any(|segment| {
        segment == ".." || segment == "." || segment == "%2e%2e" || segment == "%2E%2E"
    });
    if climbs {
        return Err(Error::NotAllowed(format!(
            "{location} climbs out of its directory"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn allowed() -> AllowedLocations {
        let opener: StorageOpener = Arc::new(|location: &str| crate::storage::open(location));
        AllowedLocations::new(["/srv/lake", "s3://bucket/tables"], opener).unwrap()
    }

    #[test]
    fn opens_only_locations_under_its_roots() {
        let allowed = allowed();
        assert!(allowed.check("/srv/lake/acme/t").is_ok());
        assert!(allowed.check("file:///srv/lake/acme/t/").is_ok());
        assert!(allowed.check("s3://bucket/tables/acme/t").is_ok());
        for outside in [
            "/srv/lakehouse/t",
            "/srv/other/t",
            "/etc",
            "s3://bucket/tablesx/t",
            "s3://other/tables/t",
            "gs://bucket/tables/t",
            "s3://bucket/tables/../secrets",
            "s3://bucket/tables/%2e%2e/secrets",
        ] {
            assert!(
                matches!(allowed.check(outside), Err(Error::NotAllowed(_))),
                "{outside} was allowed"
            );
        }
    }
}
