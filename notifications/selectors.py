"""Reads of the notifications app."""
from .kinds import Kind
from .models import NotificationSetting


def receiving(user) -> list[str]:
    """The kinds `user` receives by e-mail now (all of them until they turn one off)."""
    setting = NotificationSetting.objects.filter(user=user).first()
    return [str(kind) for kind in Kind if setting is None or setting.receives(kind)]
