//! Amazon Resource Names: the one parser of
//! `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
//!
//! A text is an ARN when it begins with `arn:` (the exact, lower-case
//! prefix, as ASCP and the AWS SDK read it) and holds at least five more
//! `:`-separated sections. The first four sections stop at the next `:`; the
//! resource is the rest and may hold `:` itself (a Secrets Manager secret
//! `secret:name-AbCdEf`, a parameter's `parameter/a:3` selector). Any section
//! may be empty: the region and account are empty for global services, and
//! each caller decides what an empty section means for it.
//!
//! Parsing borrows from the text and allocates nothing. It reads at most up
//! to the fifth `:` and never past it, so a hostile text (one of 10^5
//! colons, say) costs one scan of its head. This module imports nothing
//! from the crate, so every layer may use it.

/// The prefix every ARN begins with.
pub const PREFIX: &str = "arn:";

/// The sections of an ARN, borrowed from its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub partition: &'a str,
    /// `secretsmanager`, `ssm`, `iam`, `kms`, …
    pub service: &'a str,
    /// The region; empty for global services.
    pub region: &'a str,
    /// The account id; empty for some resources.
    pub account: &'a str,
    /// Everything after the account's `:`, colons included.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Parses an ARN; `None` when `s` does not begin with `arn:` or has
    /// fewer than six sections.
    pub fn parse(s: &'a str) -> Option<Self> {
        let rest = s.strip_prefix(PREFIX)?;
        let mut parts = rest.splitn(5, ':');
        Some(Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }

    /// The length of `arn:PARTITION:SERVICE:REGION:ACCOUNT:`, where the
    /// resource starts in the parsed text.
    pub fn resource_start(&self) -> usize {
        PREFIX.len()
            + self.partition.len()
            + self.service.len()
            + self.region.len()
            + self.account.len()
            + 4
    }

    /// Whether this is an IAM role's ARN: service `iam`, no region, a
    /// 12-digit account and a resource `role/NAME` with a non-empty name.
    pub fn is_iam_role(&self) -> bool {
        self.service == "iam"
            && self.region.is_empty()
            && self.account.len() == 12
            && self.account.bytes().all(|b| b.is_ascii_digit())
            && self
                .resource
                .strip_prefix("role/")
                .is_some_and(|r| !r.is_empty())
    }
}

/// Whether `s` is written as an ARN (it begins with `arn:`), whether or not
/// it parses: such a name is never a plain secret or parameter name.
pub fn is_arn(s: &str) -> bool {
    s.starts_with(PREFIX)
}

/// Whether `s` parses as an IAM role's ARN ([`Arn::is_iam_role`]).
pub fn is_iam_role_arn(s: &str) -> bool {
    Arn::parse(s).is_some_and(|a| a.is_iam_role())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        let a = Arn::parse("arn:aws-cn:ssm:cn-north-1:123456789012:parameter/a:1").unwrap();
        assert_eq!(
            a,
            Arn {
                partition: "aws-cn",
                service: "ssm",
                region: "cn-north-1",
                account: "123456789012",
                resource: "parameter/a:1",
            }
        );
        let text = "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf";
        let a = Arn::parse(text).unwrap();
        assert_eq!(a.resource, "secret:db-AbCdEf");
        assert_eq!(&text[a.resource_start()..], a.resource);
        assert_eq!(
            &text[..a.resource_start()],
            "arn:aws:secretsmanager:us-east-1:111122223333:"
        );
    }

    #[test]
    fn empty_sections_parse() {
        let a = Arn::parse("arn:::::").unwrap();
        assert_eq!(
            (a.partition, a.service, a.region, a.account, a.resource),
            ("", "", "", "", "")
        );
        assert_eq!(a.resource_start(), "arn:::::".len());
        let a = Arn::parse("arn:aws:iam::123456789012:role/r").unwrap();
        assert_eq!(a.region, "");
        let a = Arn::parse("arn:aws:secretsmanager:us-east-1::secret:x").unwrap();
        assert_eq!(a.account, "");
    }

    #[test]
    fn too_few_sections_or_no_prefix() {
        for bad in [
            "",
            "arn",
            "arn:",
            "arn:aws",
            "arn:aws:secretsmanager",
            "arn:aws:secretsmanager:us-east-1",
            "arn:aws:secretsmanager:us-east-1:123456789012",
            "Arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            "ARN:aws:secretsmanager:us-east-1:123456789012:secret:x",
            " arn:aws:secretsmanager:us-east-1:123456789012:secret:x",
            "aws:secretsmanager:us-east-1:123456789012:secret:x",
            "db/prod",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn hostile_texts() {
        // 10^5 colons: the first four are sections, the rest the resource.
        let colons = format!("arn:{}", ":".repeat(100_000));
        let a = Arn::parse(&colons).unwrap();
        assert_eq!(a.resource.len(), 100_000 - 4);
        assert_eq!(a.resource_start(), 8);
        // Without the prefix, no number of colons makes an ARN.
        assert_eq!(Arn::parse(&":".repeat(100_000)), None);
        // Non-ASCII sections are kept as they are, split on `:` only.
        let a = Arn::parse("arn:aws:séçrets:eu-west-1:1:ключ:ü").unwrap();
        assert_eq!(a.service, "séçrets");
        assert_eq!(a.resource, "ключ:ü");
        assert_eq!(
            &"arn:aws:séçrets:eu-west-1:1:ключ:ü"[a.resource_start()..],
            "ключ:ü"
        );
        // A fullwidth colon is not a separator.
        assert_eq!(Arn::parse("arn：aws：ssm：r：1：x"), None);
        assert_eq!(
            Arn::parse("arn:aws\0:ssm:r:1:x").unwrap().partition,
            "aws\0"
        );
    }

    #[test]
    fn claimed_arns() {
        assert!(is_arn("arn:"));
        assert!(is_arn("arn:aws"));
        assert!(!is_arn("Arn:aws:x"));
        assert!(!is_arn("db/arn:x"));
    }

    #[test]
    fn iam_roles() {
        assert!(is_iam_role_arn("arn:aws:iam::123456789012:role/r"));
        assert!(is_iam_role_arn("arn:aws-cn:iam::123456789012:role/path/r"));
        for bad in [
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:user/r",
            "arn:aws:iam:us-east-1:123456789012:role/r",
            "arn:aws:iam::12345678901:role/r",
            "arn:aws:iam::1234567890123:role/r",
            "arn:aws:iam::12345678901x:role/r",
            "arn:aws:iam::١٢٣٤٥٦٧٨٩٠١٢:role/r",
            "arn:aws:sts::123456789012:role/r",
            "arn:aws:iam::123456789012",
            "role/r",
            "",
        ] {
            assert!(!is_iam_role_arn(bad), "{bad:?}");
        }
    }

    /// The parsers this module replaced, kept here to show where the one
    /// parser agrees with each (everywhere a caller can reach) and where not.
    mod replaced {
        pub fn sm_account(name: &str) -> Option<&str> {
            if !name.starts_with("arn:") {
                return None;
            }
            name.split(':').nth(4).filter(|a| !a.is_empty())
        }
        pub fn ps_key(name: &str) -> String {
            let bare = if name.starts_with("arn:") {
                name.splitn(6, ':')
                    .nth(5)
                    .and_then(|resource| resource.strip_prefix("parameter"))
                    .unwrap_or(name)
            } else {
                name
            };
            bare.trim_start_matches('/').to_owned()
        }
        pub fn ps_strip_selector(text: &str) -> &str {
            let start = if text.starts_with("arn:") {
                text.match_indices(':')
                    .nth(4)
                    .map_or(text.len(), |(at, _)| at + 1)
            } else {
                0
            };
            match text[start..].find(':') {
                Some(at) => &text[..start + at],
                None => text,
            }
        }
        pub fn fetch_region(arn: &str) -> Option<&str> {
            arn.split(':').nth(3)
        }
        pub fn doctor_account(arn: &str) -> (String, String) {
            let fields: Vec<&str> = arn.splitn(6, ':').collect();
            match fields.as_slice() {
                [_, p, _, _, a, _] => ((*p).to_owned(), (*a).to_owned()),
                _ => ("aws".to_owned(), String::new()),
            }
        }
    }

    fn corpus() -> Vec<String> {
        let mut all: Vec<String> = [
            "",
            ":",
            "arn",
            "arn:",
            "arn:aws",
            "arn:aws:secretsmanager",
            "arn:aws:secretsmanager:us-east-1",
            "arn:aws:secretsmanager:us-east-1:111122223333",
            "arn:aws:secretsmanager:us-east-1:111122223333:",
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf",
            "arn:aws:secretsmanager:us-east-1::secret:x",
            "arn:aws:ssm:us-east-1:123456789012:parameter/a/b",
            "arn:aws:ssm:us-east-1:123456789012:parameter/a/b:prod",
            "arn:aws:ssm:us-east-1:123456789012:parameter/plain:3",
            "arn:aws:ssm:us-east-1:123456789012:other/a:3",
            "arn:aws:iam::123456789012:role/r",
            "arn:::::",
            "arn:aws:séçrets:eu-west-1:1:ключ:ü",
            "Arn:aws:ssm:us-east-1:1:parameter/a",
            "/a/b",
            "a/b:3",
            "db/prod",
            "x:aws:ssm:us-east-1:1:parameter/a",
        ]
        .map(str::to_owned)
        .to_vec();
        all.push(format!("arn:{}", ":".repeat(100_000)));
        all
    }

    #[test]
    fn agrees_with_the_replaced_parsers() {
        for text in corpus() {
            let t = text.as_str();
            let parsed = Arn::parse(t);
            // Parameter Store's request key and selector: equal everywhere.
            let key = parsed
                .and_then(|a| a.resource.strip_prefix("parameter"))
                .unwrap_or(t)
                .trim_start_matches('/');
            assert_eq!(key, replaced::ps_key(t), "{t:?}");
            let start = match parsed {
                Some(a) => a.resource_start(),
                None if is_arn(t) => t.len(),
                None => 0,
            };
            let stripped = t[start..].find(':').map_or(t, |at| &t[..start + at]);
            assert_eq!(stripped, replaced::ps_strip_selector(t), "{t:?}");
            // The others agree on every text that parses, the only texts
            // their callers reach: Secrets Manager's names passed the
            // class's rules, where a name beginning `arn:` must parse; the
            // fetch's and the doctor's ARNs are AWS's own answers.
            let account = parsed.map(|a| a.account).filter(|a| !a.is_empty());
            let doctor = parsed.map_or(("aws".to_owned(), String::new()), |a| {
                (a.partition.to_owned(), a.account.to_owned())
            });
            if let Some(arn) = parsed {
                assert_eq!(account, replaced::sm_account(t), "{t:?}");
                assert_eq!(Some(arn.region), replaced::fetch_region(t), "{t:?}");
                assert_eq!(doctor, replaced::doctor_account(t), "{t:?}");
            }
        }
        // Where they differ: a text with `arn:` and only five sections had
        // an account for Secrets Manager's batch filter; a text without the
        // prefix had a region for the fetch and an account for the doctor.
        let five = "arn:aws:secretsmanager:us-east-1:111122223333";
        assert_eq!(replaced::sm_account(five), Some("111122223333"));
        assert_eq!(Arn::parse(five), None);
        let unprefixed = "x:aws:ssm:us-east-1:1:parameter/a";
        assert_eq!(replaced::fetch_region(unprefixed), Some("us-east-1"));
        assert_eq!(replaced::doctor_account(unprefixed).1, "1");
        assert_eq!(Arn::parse(unprefixed), None);
        // The doctor found a parameter's name after the first `:parameter`
        // anywhere in the text, also in a partition that begins so; the
        // resource is where the name is.
        let odd = "arn:parameterx:ssm:us-east-1:1:parameter/a";
        let old = odd.split_once(":parameter").map(|(_, rest)| rest);
        assert_eq!(old, Some("x:ssm:us-east-1:1:parameter/a"));
        let new = Arn::parse(odd).and_then(|a| a.resource.strip_prefix("parameter"));
        assert_eq!(new, Some("/a"));
    }
}
