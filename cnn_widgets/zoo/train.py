"""Reproduce the default model: ``python -m cnn_widgets.zoo.train`` retrains the digits LeNet
(ignoring the cache, then refreshing it) and prints its test accuracy and training time."""
from .pretrained import lenet_digits


def main() -> None:
    card = lenet_digits(retrain=True, device="cpu").model_card
    print(f"{card['name']}: test accuracy {card['test_accuracy']:.2%}, "
          f"trained in {card['trained_seconds']:.1f} s")
    print(f"weights cached at {card['cache_file']}")


if __name__ == "__main__":
    main()
