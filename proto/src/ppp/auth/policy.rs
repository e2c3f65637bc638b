//! Which authentication methods a link may use, in pppd's terms.

use crate::wire::chap::ChapAlgorithm;
use crate::wire::lcp::AuthMethod;
use crate::wire::ppp::Protocol;

/// An authentication method this crate implements, strongest first in declaration order.
///
/// EAP is never implemented (pppd's `refuse-eap` is what Poptop sets): the LCP negotiator
/// must Nak or Reject any Authentication-Protocol it cannot map to a `Method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// MS-CHAPv2 (RFC 2759): mutual authentication and MPPE keys.
    MsChapV2,
    /// MS-CHAPv1 (RFC 2433): MPPE keys, no mutual authentication.
    MsChapV1,
    /// CHAP with MD5 (RFC 1994): no MPPE keys.
    ChapMd5,
    /// PAP (RFC 1334): the password in clear text.
    Pap,
}

impl Method {
    /// Every method, strongest first: the order in which an authenticator prefers them.
    pub const ALL: [Method; 4] = [
        Method::MsChapV2,
        Method::MsChapV1,
        Method::ChapMd5,
        Method::Pap,
    ];

    /// The LCP Authentication-Protocol value that names this method.
    pub fn to_lcp(self) -> AuthMethod {
        match self {
            Method::MsChapV2 => AuthMethod::MS_CHAP_V2,
            Method::MsChapV1 => AuthMethod::MS_CHAP_V1,
            Method::ChapMd5 => AuthMethod::CHAP_MD5,
            Method::Pap => AuthMethod::Pap,
        }
    }

    /// The method an LCP Authentication-Protocol option names, if we implement it (CHAP
    /// with an unknown algorithm is `None`).
    pub fn from_lcp(method: AuthMethod) -> Option<Method> {
        match method {
            AuthMethod::Pap => Some(Method::Pap),
            AuthMethod::Chap(ChapAlgorithm::MsChapV2) => Some(Method::MsChapV2),
            AuthMethod::Chap(ChapAlgorithm::MsChapV1) => Some(Method::MsChapV1),
            AuthMethod::Chap(ChapAlgorithm::Md5) => Some(Method::ChapMd5),
            AuthMethod::Chap(ChapAlgorithm::Unknown(_)) => None,
        }
    }

    /// The PPP protocol its packets travel in (0xC223 for the CHAPs, 0xC023 for PAP).
    pub fn protocol(self) -> Protocol {
        match self {
            Method::Pap => Protocol::Pap,
            _ => Protocol::Chap,
        }
    }

    /// The CHAP algorithm octet, `None` for PAP.
    pub fn chap_algorithm(self) -> Option<ChapAlgorithm> {
        match self {
            Method::MsChapV2 => Some(ChapAlgorithm::MsChapV2),
            Method::MsChapV1 => Some(ChapAlgorithm::MsChapV1),
            Method::ChapMd5 => Some(ChapAlgorithm::Md5),
            Method::Pap => None,
        }
    }

    /// Whether a successful exchange yields MPPE start keys (RFC 3079): only MS-CHAP does,
    /// so CCP may offer MPPE only after one of these.
    pub fn provides_mppe_keys(self) -> bool {
        matches!(self, Method::MsChapV2 | Method::MsChapV1)
    }

    /// pppd's name for it, as in its logs (`MS-CHAP-v2`, `MS-CHAP`, `CHAP`, `PAP`).
    pub fn name(self) -> &'static str {
        match self {
            Method::MsChapV2 => "MS-CHAP-v2",
            Method::MsChapV1 => "MS-CHAP",
            Method::ChapMd5 => "CHAP",
            Method::Pap => "PAP",
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Method::MsChapV2 => 1,
            Method::MsChapV1 => 2,
            Method::ChapMd5 => 4,
            Method::Pap => 8,
        }
    }
}

impl core::fmt::Display for Method {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The pppd options that decide the authentication methods.
///
/// pppd applies `require-*` to the peer (what the authenticator asks for) and `refuse-*` to
/// itself (what it agrees to be asked for). A PPTP concentrator only ever authenticates and
/// a dialling client only ever is authenticated, so [`AuthPolicy`] keeps one set for both
/// and [`AuthPolicy::from_pppd_options`] applies both kinds to it: with Poptop's
/// `pptpd-options` (`refuse-pap refuse-chap refuse-mschap require-mschap-v2`) both readings
/// give MS-CHAPv2 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PppdAuthOption {
    /// `require-pap`.
    RequirePap,
    /// `require-chap` (CHAP with MD5).
    RequireChap,
    /// `require-mschap`.
    RequireMsChap,
    /// `require-mschap-v2`.
    RequireMsChapV2,
    /// `refuse-pap`.
    RefusePap,
    /// `refuse-chap` (CHAP with MD5 only, as in pppd 2.4).
    RefuseChap,
    /// `refuse-mschap`.
    RefuseMsChap,
    /// `refuse-mschap-v2`.
    RefuseMsChapV2,
    /// `refuse-eap`: accepted and without effect, EAP is never offered nor accepted.
    RefuseEap,
}

/// The ordered set of allowed methods (strongest first, [`Method::ALL`] order).
///
/// The authenticator asks for [`preferred`](Self::preferred) in its LCP Configure-Request
/// and, when the peer Naks with another method, takes it if [`allows`](Self::allows) it,
/// or else falls back to [`next_after`](Self::next_after). The peer Acks a requested method
/// it [`allows`](Self::allows) and otherwise Naks with its `preferred`. An empty policy
/// means no authentication (pppd's `noauth` on a server; a client then refuses every
/// request).
///
/// The default is Poptop's `pptpd-options`: MS-CHAPv2 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthPolicy {
    allowed: u8,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy::only(Method::MsChapV2)
    }
}

impl AuthPolicy {
    /// No method: no authentication.
    pub const fn none() -> AuthPolicy {
        AuthPolicy { allowed: 0 }
    }

    /// Every method (pppd's behaviour without any `require-*`/`refuse-*`).
    pub const fn all() -> AuthPolicy {
        AuthPolicy { allowed: 0x0f }
    }

    /// Exactly one method.
    pub const fn only(method: Method) -> AuthPolicy {
        AuthPolicy {
            allowed: method.bit(),
        }
    }

    /// This policy with `method` allowed too.
    pub const fn with(self, method: Method) -> AuthPolicy {
        AuthPolicy {
            allowed: self.allowed | method.bit(),
        }
    }

    /// This policy without `method`.
    pub const fn without(self, method: Method) -> AuthPolicy {
        AuthPolicy {
            allowed: self.allowed & !method.bit(),
        }
    }

    /// The policy pppd options describe: the `require-*` methods if any is given (else
    /// all), minus the `refuse-*` ones. See [`PppdAuthOption`] for why both apply to one set.
    pub fn from_pppd_options(options: impl IntoIterator<Item = PppdAuthOption>) -> AuthPolicy {
        let mut required = AuthPolicy::none();
        let mut refused = AuthPolicy::none();
        for option in options {
            match option {
                PppdAuthOption::RequirePap => required = required.with(Method::Pap),
                PppdAuthOption::RequireChap => required = required.with(Method::ChapMd5),
                PppdAuthOption::RequireMsChap => required = required.with(Method::MsChapV1),
                PppdAuthOption::RequireMsChapV2 => required = required.with(Method::MsChapV2),
                PppdAuthOption::RefusePap => refused = refused.with(Method::Pap),
                PppdAuthOption::RefuseChap => refused = refused.with(Method::ChapMd5),
                PppdAuthOption::RefuseMsChap => refused = refused.with(Method::MsChapV1),
                PppdAuthOption::RefuseMsChapV2 => refused = refused.with(Method::MsChapV2),
                PppdAuthOption::RefuseEap => {}
            }
        }
        let base = if required.is_empty() {
            AuthPolicy::all()
        } else {
            required
        };
        AuthPolicy {
            allowed: base.allowed & !refused.allowed,
        }
    }

    /// Whether no method is allowed.
    pub const fn is_empty(self) -> bool {
        self.allowed == 0
    }

    /// Whether `method` is allowed.
    pub const fn allows(self, method: Method) -> bool {
        self.allowed & method.bit() != 0
    }

    /// Whether the method an LCP option names is allowed (`false` for ones we lack).
    pub fn allows_lcp(self, method: AuthMethod) -> bool {
        Method::from_lcp(method).is_some_and(|m| self.allows(m))
    }

    /// The allowed methods, strongest first.
    pub fn allowed(self) -> impl Iterator<Item = Method> + Clone {
        Method::ALL.into_iter().filter(move |&m| self.allows(m))
    }

    /// The strongest allowed method: what to ask for first (or to Nak with).
    pub fn preferred(self) -> Option<Method> {
        self.allowed().next()
    }

    /// The next weaker allowed method after `method`: what an authenticator asks for when
    /// the peer refuses `method` without suggesting one we allow.
    pub fn next_after(self, method: Method) -> Option<Method> {
        self.allowed().find(|&m| m > method)
    }

    /// Our strongest method that the peer also offers (in any order).
    pub fn strongest_common(self, peer_offer: impl IntoIterator<Item = Method>) -> Option<Method> {
        let mut offered = AuthPolicy::none();
        for method in peer_offer {
            offered = offered.with(method);
        }
        self.allowed().find(|&m| offered.allows(m))
    }
}

/// The peer's answer to the authenticator's Authentication-Protocol option (RFC 1661
/// section 5.3: Nak with the protocol we would rather use, Reject if we would use none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthReply {
    /// Configure-Ack: we authenticate with this method.
    Ack(Method),
    /// Configure-Nak suggesting this method (our preferred).
    Nak(Method),
    /// Configure-Reject: we allow no method at all.
    Reject,
}

impl AuthPolicy {
    /// Peer side: how to answer an Authentication-Protocol option asking for `requested`
    /// (pppd's client: Ack what it allows, otherwise Nak with its strongest).
    pub fn answer_request(self, requested: AuthMethod) -> AuthReply {
        match (Method::from_lcp(requested), self.preferred()) {
            (Some(method), _) if self.allows(method) => AuthReply::Ack(method),
            (_, Some(preferred)) => AuthReply::Nak(preferred),
            (_, None) => AuthReply::Reject,
        }
    }

    /// Authenticator side: what to ask for after the peer Naked `current`, suggesting
    /// `suggested` (pppd: the suggestion if we allow it, else the next weaker method we
    /// allow). `None`: no common method, LCP must close ([`FailureCause::NoCommonMethod`]).
    ///
    /// [`FailureCause::NoCommonMethod`]: super::FailureCause::NoCommonMethod
    pub fn after_nak(self, current: Method, suggested: Option<AuthMethod>) -> Option<Method> {
        match suggested.and_then(Method::from_lcp) {
            Some(method) if self.allows(method) && method != current => Some(method),
            _ => self.next_after(current),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_default_is_pptpd_options() {
        let pptpd = AuthPolicy::from_pppd_options([
            PppdAuthOption::RefusePap,
            PppdAuthOption::RefuseChap,
            PppdAuthOption::RefuseMsChap,
            PppdAuthOption::RequireMsChapV2,
            PppdAuthOption::RefuseEap,
        ]);
        assert_eq!(pptpd, AuthPolicy::default());
        assert_eq!(pptpd.allowed().collect::<Vec<_>>(), [Method::MsChapV2]);
        assert_eq!(pptpd.preferred(), Some(Method::MsChapV2));
        assert!(!pptpd.allows(Method::Pap));
    }

    #[test]
    fn test_refuse_without_require_starts_from_all() {
        let policy = AuthPolicy::from_pppd_options([PppdAuthOption::RefusePap]);
        assert_eq!(
            policy.allowed().collect::<Vec<_>>(),
            [Method::MsChapV2, Method::MsChapV1, Method::ChapMd5]
        );
        assert_eq!(AuthPolicy::from_pppd_options([]), AuthPolicy::all());
        let refuse_v2 = AuthPolicy::from_pppd_options([
            PppdAuthOption::RequireMsChapV2,
            PppdAuthOption::RefuseMsChapV2,
        ]);
        assert!(refuse_v2.is_empty());
        assert_eq!(refuse_v2.preferred(), None);
    }

    #[test]
    fn test_negotiation_helpers() {
        let policy = AuthPolicy::all().without(Method::MsChapV1);
        assert_eq!(policy.next_after(Method::MsChapV2), Some(Method::ChapMd5));
        assert_eq!(policy.next_after(Method::Pap), None);
        assert_eq!(
            policy.strongest_common([Method::Pap, Method::ChapMd5, Method::MsChapV1]),
            Some(Method::ChapMd5)
        );
        assert_eq!(AuthPolicy::default().strongest_common([Method::Pap]), None);
        assert!(policy.allows_lcp(AuthMethod::MS_CHAP_V2));
        assert!(!policy.allows_lcp(AuthMethod::Chap(ChapAlgorithm::Unknown(0x82))));
    }

    #[test]
    fn test_lcp_answers() {
        let client = AuthPolicy::all().without(Method::Pap);
        assert_eq!(
            client.answer_request(AuthMethod::MS_CHAP_V1),
            AuthReply::Ack(Method::MsChapV1)
        );
        assert_eq!(
            client.answer_request(AuthMethod::Pap),
            AuthReply::Nak(Method::MsChapV2)
        );
        assert_eq!(
            client.answer_request(AuthMethod::Chap(ChapAlgorithm::Unknown(0x82))),
            AuthReply::Nak(Method::MsChapV2)
        );
        assert_eq!(
            AuthPolicy::none().answer_request(AuthMethod::MS_CHAP_V2),
            AuthReply::Reject
        );

        let server = AuthPolicy::all();
        assert_eq!(
            server.after_nak(Method::MsChapV2, Some(AuthMethod::Pap)),
            Some(Method::Pap)
        );
        assert_eq!(
            server.after_nak(Method::MsChapV2, None),
            Some(Method::MsChapV1)
        );
        let pptpd = AuthPolicy::default();
        assert_eq!(
            pptpd.after_nak(Method::MsChapV2, Some(AuthMethod::Pap)),
            None
        );
        assert_eq!(
            pptpd.after_nak(Method::MsChapV2, Some(AuthMethod::MS_CHAP_V2)),
            None
        );
    }

    #[test]
    fn test_method_lcp_round_trip() {
        for method in Method::ALL {
            assert_eq!(Method::from_lcp(method.to_lcp()), Some(method));
            assert_eq!(method.to_lcp().protocol(), method.protocol());
        }
        assert_eq!(Method::MsChapV2.to_string(), "MS-CHAP-v2");
        assert!(Method::MsChapV1.provides_mppe_keys());
        assert!(!Method::ChapMd5.provides_mppe_keys());
    }
}
