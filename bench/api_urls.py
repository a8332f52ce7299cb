"""The benchmark's urlconf: every real route, plus two baselines that return a constant JSON: a bare Django
view, and the same through DRF with the API's authentication and read permission (the framework's floor);
and the middleware that counts each request's queries."""
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from rest_framework.response import Response
from rest_framework.views import APIView

CONSTANT = {"status": "ok", "job_id": "000000000000", "kind": "blueprint"}


def count_queries(get_response):
    def middleware(request):
        sent = []
        with connection.execute_wrapper(lambda execute, sql, *rest: sent.append(sql) or execute(sql, *rest)):
            response = get_response(request)
        response["X-Queries"] = str(len(sent))
        return response

    return middleware


def bare(request):
    return JsonResponse(CONSTANT)


class BareApi(APIView):
    def get(self, request):
        return Response(CONSTANT)


urlpatterns = [
    path("bench/bare", bare),
    path("bench/bare-drf", BareApi.as_view()),
    path("", include("eam_site.urls")),
]
