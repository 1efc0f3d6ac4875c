package fhir

// Canonical URLs and codes of the Subscriptions R5 Backport IG (STU 1.1) and
// Herald's own extensions.
const (
	BackportBase = "http://hl7.org/fhir/uv/subscriptions-backport"

	ExtFilterCriteria  = BackportBase + "/StructureDefinition/backport-filter-criteria"
	ExtPayloadContent  = BackportBase + "/StructureDefinition/backport-payload-content"
	ExtHeartbeatPeriod = BackportBase + "/StructureDefinition/backport-heartbeat-period"
	ExtTimeout         = BackportBase + "/StructureDefinition/backport-timeout"
	ExtMaxCount        = BackportBase + "/StructureDefinition/backport-max-count"
	ExtChannelType     = BackportBase + "/StructureDefinition/backport-channel-type"
	ExtTopicCanonical  = BackportBase + "/StructureDefinition/capabilitystatement-subscriptiontopic-canonical"

	ProfileSubscription         = BackportBase + "/StructureDefinition/backport-subscription"
	ProfileNotificationR4       = BackportBase + "/StructureDefinition/backport-subscription-notification-r4"
	ProfileStatusR4             = BackportBase + "/StructureDefinition/backport-subscription-status-r4"
	CapabilityServerR4          = BackportBase + "/CapabilityStatement/backport-subscription-server-r4"
	OperationSubscriptionStatus = BackportBase + "/OperationDefinition/backport-subscription-status"
	OperationSubscriptionEvents = BackportBase + "/OperationDefinition/backport-subscription-events"
	OperationGetWSBindingToken  = BackportBase + "/OperationDefinition/backport-subscription-get-ws-binding-token"

	// OperationSubscriptionAttempts is Herald's $attempts: the owner's view
	// of the delivery attempt log (README, "HTTP surface").
	OperationSubscriptionAttempts = "https://herald.dev/fhir/OperationDefinition/Subscription-attempts"

	// ExtSigningSecret is Herald's write-only signing secret on Subscription.channel.
	ExtSigningSecret = "https://herald.dev/fhir/StructureDefinition/signing-secret"
	// ExtNotificationToken (valueBoolean, on Subscription.channel) asks for
	// a notification access token in each id-only event notification.
	ExtNotificationToken = "https://herald.dev/fhir/StructureDefinition/notification-access-token"
	// NotificationAuthType is the system of the authorization-type coding
	// of a notification-event that carries such a token (bearer-token).
	NotificationAuthType = "https://herald.dev/fhir/CodeSystem/notification-authorization-type"
)

// Payload content codes (backport-content-code-system).
const (
	ContentEmpty        = "empty"
	ContentIDOnly       = "id-only"
	ContentFullResource = "full-resource"
)

// Channel types (R4 subscription-channel-type) Herald delivers on.
const (
	ChannelRestHook  = "rest-hook"
	ChannelWebsocket = "websocket"
)

// Subscription statuses (R4 subscription-status).
const (
	StatusRequested = "requested"
	StatusActive    = "active"
	StatusError     = "error"
	StatusOff       = "off"
)

// Subscription error codes (http://terminology.hl7.org/CodeSystem/subscription-error),
// as in the IG's error notification examples.
const (
	SubscriptionErrorSystem     = "http://terminology.hl7.org/CodeSystem/subscription-error"
	SubscriptionErrorDNS        = "dns-resolution-error" // the endpoint's host did not resolve
	SubscriptionErrorNoResponse = "no-response"          // no answer: timeout, refused or failed connection
	SubscriptionErrorResponse   = "error-response"       // an answer that is not a 2xx
)
