// Load a lamina vision graph written with format="torchscript", read a PNG, print the predicted label.
//
// The graph takes N x H x W x C uint8 pixels and returns (probabilities, class index); the labels come from the
// JSON file written beside the graph (MODEL.pt.json), read here with a small search for its "labels" list, so this
// program needs nothing but libtorch and libpng.
#include <png.h>
#include <torch/script.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The PNG's pixels as an H x W x C uint8 tensor (C = 1 for grey images, 3 otherwise).
torch::Tensor read_png(const std::string& path, int channels) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&image, path.c_str())) {
        throw std::runtime_error("cannot read " + path + ": " + image.message);
    }
    image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
    std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
    if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) {
        throw std::runtime_error("cannot decode " + path + ": " + image.message);
    }
    auto t = torch::from_blob(pixels.data(), {image.height, image.width, channels}, torch::kUInt8);
    return t.clone();
}

// The strings of the top-level "labels" list of the graph's JSON description.
std::vector<std::string> read_labels(const std::string& json_path) {
    std::ifstream in(json_path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    std::vector<std::string> labels;
    auto start = text.find("\"labels\"");
    if (start == std::string::npos) return labels;
    start = text.find('[', start);
    const auto end = text.find(']', start);
    for (auto pos = text.find('"', start); pos != std::string::npos && pos < end; pos = text.find('"', pos + 1)) {
        const auto close = text.find('"', pos + 1);
        labels.push_back(text.substr(pos + 1, close - pos - 1));
        pos = close;
    }
    return labels;
}

// The channel count the graph expects: the last entry of its input shape in the JSON ("shape": ["N", "H", "W", 3]).
int read_channels(const std::string& json_path) {
    std::ifstream in(json_path);
    std::stringstream buffer;
    buffer << in.rdbuf();
    const std::string text = buffer.str();
    const auto shape = text.find("\"shape\"");
    const auto close = text.find(']', shape);
    const auto comma = text.rfind(',', close);
    return std::stoi(text.substr(comma + 1, close - comma - 1));
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: lamina_predict MODEL.pt IMAGE.png\n";
        return 2;
    }
    try {
        const std::string model_path = argv[1];
        torch::jit::script::Module graph = torch::jit::load(model_path);
        graph.eval();
        const int channels = read_channels(model_path + ".json");
        const auto labels = read_labels(model_path + ".json");
        torch::NoGradGuard no_grad;
        auto out = graph.forward({read_png(argv[2], channels).unsqueeze(0)}).toTuple();
        const auto probs = out->elements()[0].toTensor()[0];
        const int64_t index = out->elements()[1].toTensor()[0].item<int64_t>();
        const std::string label = index < static_cast<int64_t>(labels.size()) ? labels[index] : std::to_string(index);
        std::cout << label << " " << index << " " << probs[index].item<float>() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "lamina_predict: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
