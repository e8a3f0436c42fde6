"""How large a request `twload serve` reads: its URL and its head, capped as nginx caps them.

nginx's default `large_client_header_buffers 4 8k` (ngx_http_core_module; src/http/ngx_http_request.c,
ngx_http_alloc_large_header_buffer): the request line must fit one 8k buffer, else 414 ("client sent too
long URI"), and the whole head the four of them. nginx answers a head too large with 400 ("Request Header
Or Cookie Too Large"); RFC 6585 §5 gives that its own code, 431, which serve sends. Apart from the server
so that the command line shows the defaults without importing the event loop.
"""

MAX_URL = 8 * 1024  # bytes of request-target
MAX_HEAD = 4 * 8 * 1024  # bytes from the request line to the blank line, both included
