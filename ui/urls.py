"""The /ui reviewer pages."""
app_name = "ui"

urlpatterns = []
