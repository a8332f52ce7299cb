"""`GET /metrics`: the Prometheus exposition of jobs.metrics, for scrapers that hold the metrics token or call from
an allowed address. A plain Django view: no session, no CSRF, nothing written."""
import hmac
from ipaddress import ip_address, ip_network

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST

from jobs import metrics

from .exceptions import error_body

ALLOWED_METHODS = ("GET", "HEAD")


def allowed_networks() -> list:
    try:
        return [ip_network(entry.strip(), strict=False) for entry in settings.EAM_METRICS_ALLOW if entry.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(f"EAM_METRICS_ALLOW: {exc}") from exc


def client_address(request):
    """REMOTE_ADDR as an address (an IPv4-mapped IPv6 address as its IPv4 one), None when it is not one."""
    try:
        address = ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return None
    return getattr(address, "ipv4_mapped", None) or address


def refusal(request) -> JsonResponse | None:
    """Why this caller may not read the metrics, or None. The token, when set, must be presented; the allowlist,
    when set, must hold REMOTE_ADDR; with neither set, only loopback callers may."""
    token = settings.EAM_METRICS_TOKEN
    networks = allowed_networks()
    if token:
        scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            body = error_body("the metrics need `Authorization: Bearer <token>`", "metrics_token_required")
            return JsonResponse(body, status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            return JsonResponse(error_body("wrong metrics token", "metrics_token_invalid"), status=403)
    address = client_address(request)
    if networks:
        permitted = address is not None and any(address in network for network in networks)
    else:
        permitted = bool(token) or (address is not None and address.is_loopback)
    if not permitted:
        return JsonResponse(error_body("this address may not read the metrics", "metrics_forbidden"), status=403)
    return None


@csrf_exempt  # not a session endpoint: a POST gets its 405, not a CSRF refusal
def metrics_view(request):
    if request.method not in ALLOWED_METHODS:
        return JsonResponse(error_body(f"method {request.method} not allowed", "method_not_allowed"), status=405,
                            headers={"Allow": ", ".join(ALLOWED_METHODS)})
    refused = refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST,
                        headers={"Cache-Control": "no-store"})
