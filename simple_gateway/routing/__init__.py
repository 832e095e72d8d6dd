"""Model routing: aliases and provider/model names, weighted choice, cooldowns, retries.

`config` parses the `models:` and `routing:` sections; `frontdoor` decides whether a
request on `/v1/chat/completions` or `/v1/embeddings` names an alias or a
provider/model and plans its attempts; `attempts` runs them; `models_list` answers
`GET /v1/models` with the aliases added.
"""
