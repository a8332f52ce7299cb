"""Static files through WhiteNoise, answered with the file's bytes instead of a file iterator.

Under ASGI Django would read a streamed file in a thread one chunk at a time and warn about every static file
("StreamingHttpResponse must consume synchronous iterators"); the files here are small stylesheets and scripts,
read once in the middleware's own thread.
"""
from django.http import HttpResponse
from whitenoise.middleware import WhiteNoiseMiddleware


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise's lookup, headers, compression and caching, with an in-memory body."""

    @staticmethod
    def serve(static_file, request):
        streamed = WhiteNoiseMiddleware.serve(static_file, request)
        try:
            body = b"".join(streamed.streaming_content)
        finally:
            streamed.close()
        response = HttpResponse(body, status=streamed.status_code)
        for header, value in streamed.items():
            response[header] = value
        return response
